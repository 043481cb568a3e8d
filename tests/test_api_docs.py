"""The API reference at /api/docs, in a real headless browser: every service's operations, and a live call."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import registry  # scripts/, put on sys.path by conftest.py

ROOT = Path(__file__).resolve().parent.parent
DRIVER = Path(__file__).resolve().parent / "browser" / "api_docs.cjs"
NODE_MODULES = ROOT / ".tools" / "web" / "node_modules"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
# Every service of the registry, in its order: the gateway fixture routes them all.
SERVICES = list(registry.load())


def browser_env() -> dict[str, str]:
    # Debian's chromium, as install.sh installs it; the Chrome of GitHub's runners otherwise.
    chromium = shutil.which("chromium") or shutil.which("google-chrome")
    node = shutil.which("node")
    if chromium is None or node is None or not (NODE_MODULES / "playwright-core").is_dir():
        pytest.fail("chromium, node or .tools/web/node_modules is missing: run ./task install")
    return {**os.environ, "NODE_PATH": str(NODE_MODULES), "CHROMIUM": chromium}


async def run_browser(gateway: str, *tried: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        "node",
        str(DRIVER),
        gateway,
        *tried,
        env=browser_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=100)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()
    result: dict[str, Any] = json.loads(stdout)
    return result


async def documented_operations(http: aiohttp.ClientSession, gateway: str, name: str) -> set[str]:
    async with http.get(f"{gateway}/api/v1/{name}/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    return {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


@pytest.mark.timeout(180)
async def test_the_api_reference_lists_every_services_operations_and_runs_a_search(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    # given the gateway in front of every service
    # when a browser opens /api/docs, shows each service, and tries out a search
    result = await run_browser(gateway, "products", "GET", "/api/v1/search")

    # then the page loaded without script errors or blocked resources
    assert result["status"] == 200
    assert result["title"] == "shop API reference"
    assert result["page_errors"] == []
    assert result["console_errors"] == []
    # and its dropdown offers each service, listing exactly the operations its document declares
    assert result["dropdown"] == SERVICES
    for name in SERVICES:
        listed = result["services"][name]
        assert len(listed) == len(set(listed)), listed
        assert set(listed) == await documented_operations(http, gateway, name)
    assert "POST /api/v1/auth/login" in result["services"]["users"]
    # and the search it executed through the gateway succeeded
    assert result["executed"] == {"status": 200}


async def test_the_api_reference_page_is_served_with_and_without_the_slash(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    for path in ("/api/docs", "/api/docs/"):
        async with http.get(f"{gateway}{path}", allow_redirects=False) as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            assert "/api/docs/shop-docs.js" in await response.text()


async def test_the_api_reference_offers_each_routed_services_document(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway}/api/docs/swagger-config.json") as response:
        assert response.status == 200
        config = await response.json()
    assert config["urls"] == [
        {"name": name, "url": f"/api/v1/{name}/openapi.json"} for name in SERVICES
    ]
    assert {"orders", "payments"} <= set(SERVICES)
    # and each of those documents is served through the gateway
    for name in SERVICES:
        async with http.get(f"{gateway}/api/v1/{name}/openapi.json") as response:
            assert response.status == 200, name
            assert (await response.json())["info"]["title"] == name


@pytest.mark.parametrize("path", ["/api/docs/index.html", "/api/docs/package.json"])
async def test_only_the_files_the_page_loads_are_served(
    gateway: str, http: aiohttp.ClientSession, path: str
) -> None:
    # Swagger UI's own demo page (which loads a third-party document) is not reachable.
    async with http.get(f"{gateway}{path}") as response:
        assert response.status == 404
        assert response.content_type == "application/problem+json"


@pytest.mark.parametrize("path", ["/api/docs", "/api/docs/swagger-config.json"])
async def test_writing_to_the_api_reference_is_not_allowed(
    gateway: str, http: aiohttp.ClientSession, path: str
) -> None:
    async with http.post(f"{gateway}{path}", json={}) as response:
        assert response.status == 405
        assert response.content_type == "application/problem+json"
        assert response.headers.getall("Allow") == ["GET, HEAD"]


async def test_a_failed_precondition_on_a_docs_file_is_a_problem(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    headers = {"If-Match": '"not-this-one"'}
    async with http.get(f"{gateway}/api/docs/swagger-ui.css", headers=headers) as response:
        assert response.status == 412
        assert response.content_type == "application/problem+json"


async def test_docs_files_are_served_whole_whatever_the_range(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    headers = {"Range": "bytes=999999999-"}
    async with http.get(f"{gateway}/api/docs/swagger-ui.css", headers=headers) as response:
        assert response.status == 200
        assert response.content_type == "text/css"


async def test_the_api_reference_may_run_its_own_scripts_and_nothing_else(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway}/api/docs") as response:
        [policy] = response.headers.getall("Content-Security-Policy")
        assert "script-src 'self';" in policy
        assert "connect-src 'self';" in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers.getall("X-Frame-Options") == ["DENY"]
    async with http.get(f"{gateway}/api/v1/users/openapi.json") as response:
        # Everything else keeps the policy that loads nothing.
        assert (
            response.headers["Content-Security-Policy"]
            == "default-src 'none'; frame-ancestors 'none'"
        )
