"""The nginx gateway, end to end: routing, request ids, security headers, limits, problem bodies."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping, Sequence

import aiohttp
import gateway as gateway_config  # scripts/, put on sys.path by conftest.py
import pytest
from multidict import CIMultiDictProxy
from yarl import URL

from shopkit.processes import free_port

StartGateway = Callable[[Mapping[str, Sequence[str]]], str]

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
GATEWAY_NOT_FOUND = gateway_config.GATEWAY_PROBLEMS[404][1]
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def assert_security_headers(headers: CIMultiDictProxy[str]) -> None:
    for name, value in SECURITY_HEADERS.items():
        # Exactly once: the gateway owns these headers even when the upstream sets its own.
        assert headers.getall(name, []) == [value], name


async def problem(response: aiohttp.ClientResponse, status: int) -> dict[str, object]:
    assert response.status == status
    assert response.content_type == "application/problem+json"
    body: dict[str, object] = await response.json(content_type=None)
    assert body["status"] == status
    assert {"type", "title", "detail", "request_id"} <= body.keys()
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


async def test_the_gateway_answers_its_own_health_check(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
        assert_security_headers(response.headers)


async def test_an_unrouted_path_is_a_not_found_problem_with_security_headers(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway}/api/v1/nothing-here") as response:
        body = await problem(response, 404)
        assert body["detail"] == GATEWAY_NOT_FOUND
        assert body["instance"] == "/api/v1/nothing-here"
        assert_security_headers(response.headers)
        assert "nginx/" not in response.headers.get("Server", "")


@pytest.mark.parametrize(
    "path",
    [
        "/internal/users/x",
        "/api/v1/users/internal/x",
        "/api/v1/auth/internal",
        "/api/v1/users/%2e%2e/%2e%2e/internal/x",
        "/api/v1/users/..%2F..%2Finternal/x",
    ],
)
async def test_internal_routes_are_never_routed(
    gateway: str, http: aiohttp.ClientSession, path: str
) -> None:
    async with http.get(URL(gateway + path, encoded=True)) as response:
        body = await problem(response, 404)
        # nginx's own answer, not a 404 from a service the request reached.
        assert body["detail"] == GATEWAY_NOT_FOUND


async def test_a_body_over_one_mib_is_a_payload_too_large_problem(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    body = b"x" * (1024 * 1024 + 1)
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{gateway}/api/v1/auth/register", data=body, headers=headers) as response:
        await problem(response, 413)
        assert_security_headers(response.headers)


async def test_a_large_body_under_the_limit_reaches_the_service(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    body = b"x" * (512 * 1024)
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{gateway}/api/v1/auth/register", data=body, headers=headers) as response:
        # The service's own verdict on the body: not JSON.
        assert response.status == 400
        assert response.content_type == "application/problem+json"


async def test_a_given_request_id_is_echoed(gateway: str, http: aiohttp.ClientSession) -> None:
    headers = {"X-Request-ID": "client-id-123"}
    async with http.get(f"{gateway}/api/v1/auth/jwks", headers=headers) as response:
        assert response.status == 200
        assert response.headers.getall("X-Request-ID") == ["client-id-123"]
    async with http.get(f"{gateway}/nowhere", headers=headers) as response:
        body = await problem(response, 404)
        assert body["request_id"] == "client-id-123"


async def test_a_request_id_is_generated_when_absent_or_unusable(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    ids = []
    for headers in ({}, {}, {"X-Request-ID": 'not "safe" {json}'}):
        async with http.get(f"{gateway}/api/v1/auth/jwks", headers=headers) as response:
            assert response.status == 200
            [request_id] = response.headers.getall("X-Request-ID")
            assert GENERATED_ID.match(request_id)
            ids.append(request_id)
    assert len(set(ids)) == 3


async def test_security_headers_are_on_a_proxied_success(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway}/api/v1/users/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
        assert "/api/v1/auth/login" in document["paths"]
        assert_security_headers(response.headers)


@pytest.mark.parametrize("path", ["/api/v1/users", "/api/v1/users/me"])
async def test_a_services_own_problem_passes_through_untouched(
    gateway: str, http: aiohttp.ClientSession, path: str
) -> None:
    async with http.get(f"{gateway}{path}") as response:
        body = await problem(response, 401)
        # The service's problem (with its auth challenge), not one the gateway wrote over it.
        assert str(body["type"]).endswith("/unauthorized")
        assert "WWW-Authenticate" in response.headers
        assert_security_headers(response.headers)


async def test_hammering_login_is_rate_limited(
    start_gateway: StartGateway,
    users_instances: list[str],
    http: aiohttp.ClientSession,
) -> None:
    # A gateway of its own, so the spent rate limit cannot touch other tests' logins.
    base = start_gateway({"users": users_instances})

    async def login() -> tuple[int, str, str, str]:
        # An empty body fails validation fast: no password hashing on the way.
        async with http.post(f"{base}/api/v1/auth/login", json={}) as response:
            retry_after = response.headers.get("Retry-After", "")
            return response.status, response.content_type, await response.text(), retry_after

    answers = await asyncio.gather(*(login() for _ in range(60)))

    statuses = sorted({status for status, *_ in answers})
    assert 429 in statuses, statuses
    assert len(statuses) > 1, statuses
    _, content_type, body, retry_after = next(answer for answer in answers if answer[0] == 429)
    assert content_type == "application/problem+json"
    assert json.loads(body)["type"].endswith("/too-many-requests")
    assert retry_after == "1"


async def test_a_dead_upstream_is_a_bad_gateway_problem(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    base = start_gateway({"users": [f"127.0.0.1:{free_port()}"]})
    for _ in range(2):  # the second finds the server already marked down
        async with http.get(f"{base}/api/v1/users/me") as response:
            assert response.status in (502, 503)
            await problem(response, response.status)
            assert_security_headers(response.headers)
