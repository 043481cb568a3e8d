"""A service made by `./task new-service` runs behind the real gateway: probes, metrics, OpenAPI, events."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import chart  # scripts/, put on sys.path by conftest.py
import dashboards
import gateway as gateway_config
import new_service
import pytest
import registry
import yaml
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg

ROOT = Path(__file__).resolve().parent.parent
NAME = "guestbook"
# The shared files the plan edits (and the dashboards it re-renders).
SHARED = (
    "pyproject.toml",
    "services/registry.toml",
    "compose/compose.yaml",
    "compose/local.yaml",
    "compose/gateway/nginx.conf",
    "compose/prometheus.yml",
    "observability/prometheus/rules/alerts.yml",
    "observability/prometheus/rules/recording.yml",
    "compose/gateway/run.sh",
)
ALERTS = Path("observability/prometheus/rules/alerts.yml")
ADMIN = {"email": "admin@shop.local", "password": "admin-password-change-me"}


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the workspace's shared files with the new service generated into it."""
    root = copy_shared(tmp_path_factory.mktemp("workspace"))
    new_service.main([NAME, "--root", str(root)])
    return root


def copy_shared(root: Path) -> Path:
    for shared in SHARED:
        (root / shared).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / shared, root / shared)
    shutil.copytree(ROOT / "dashboards", root / "dashboards", ignore=shutil.ignore_patterns("png"))
    shutil.copytree(ROOT / "charts", root / "charts")
    return root


@pytest.fixture(scope="module")
def instances(
    scaffold: Path,
    start_instances: Callable[..., list[str]],
    users_instances: list[str],
    mongo_url: str,
    nats_url: str,
) -> list[str]:
    """The generated service as real processes (`python -m`, it is not installed in the venv)."""
    env = {
        "MONGO_URL": mongo_url,
        "NATS_URL": nats_url,
        "JWKS_URL": f"http://{users_instances[0]}/api/v1/auth/jwks",
        "PYTHONPATH": str(scaffold / "services" / NAME / "src"),
    }
    count = registry.load(scaffold / "services" / "registry.toml")[NAME].instances
    return start_instances(NAME, env, count, argv=[sys.executable, "-m", NAME])


@pytest.fixture(scope="module")
def base(
    scaffold: Path,
    start_gateway: Callable[..., str],
    users_instances: list[str],
    instances: list[str],
) -> str:
    """A gateway routed by the scaffold's registry: the shop's services and the new one."""
    routes = gateway_config.routes_for(registry.load(scaffold / "services" / "registry.toml"))
    return start_gateway({"users": users_instances, NAME: instances}, routes=routes)


def test_the_new_service_is_registered_for_the_stack_the_gateway_and_the_workspace(
    scaffold: Path,
) -> None:
    entry = registry.load(scaffold / "services" / "registry.toml")[NAME]
    assert entry.prefixes == (NAME,)
    assert entry.instances == 2
    workspace = tomllib.loads((scaffold / "pyproject.toml").read_text())
    assert NAME in workspace["project"]["dependencies"]
    assert workspace["tool"]["uv"]["sources"][NAME] == {"workspace": True}


def test_the_new_service_runs_in_compose_behind_its_gateway(scaffold: Path) -> None:
    services = yaml.safe_load((scaffold / "compose" / "compose.yaml").read_text())["services"]
    build = services[NAME]["build"]
    assert (build["context"], build["dockerfile"]) == ("..", "services/Dockerfile")
    assert build["args"]["SERVICE"] == NAME
    assert services[NAME]["depends_on"]["mongo"] == {"condition": "service_healthy"}
    assert services[NAME]["environment"]["NATS_URL"] == "nats://nats:4222"
    assert services["gateway"]["depends_on"][NAME] == {"condition": "service_healthy"}
    # The shop's own services are all still there.
    assert set(registry.load()) < set(services)
    # On a machine without a registry too: the stand-in base, and the stand-in MongoDB.
    local = yaml.safe_load((scaffold / "compose" / "local.yaml").read_text())["services"]
    assert (
        local[NAME]["build"]["args"]["PYTHON_IMAGE"]
        == local["users"]["build"]["args"]["PYTHON_IMAGE"]
    )
    assert local[NAME]["environment"] == local["users"]["environment"]
    assert set(registry.load()) < set(local)

    config = (scaffold / "compose" / "gateway" / "nginx.conf").read_text()
    assert config == gateway_config.render_compose(
        registry.load(scaffold / "services" / "registry.toml")
    )
    assert f"server {NAME}:8000 " in config
    route = f"location /api/v1/{NAME}/ {{\n            proxy_pass http://{NAME};\n        }}"
    assert route in config


def test_a_compose_file_without_a_gateway_stops_the_plan_with_a_message(tmp_path: Path) -> None:
    copy_shared(tmp_path)
    compose = (ROOT / "compose" / "compose.yaml").read_text()
    (tmp_path / "compose" / "compose.yaml").write_text(compose.replace("  gateway:\n", "  gw:\n"))

    with pytest.raises(SystemExit, match="no `  gateway:` line"):
        new_service.plan(tmp_path, NAME)


def test_the_new_service_is_scraped_alerted_on_and_has_its_dashboard(scaffold: Path) -> None:
    config = yaml.safe_load((scaffold / "compose" / "prometheus.yml").read_text())
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    [discovery] = config["scrape_configs"][jobs.index(NAME)]["dns_sd_configs"]
    assert (discovery["names"], discovery["type"], discovery["port"]) == ([NAME], "A", 8000)
    # After the shop's services, before the gateway's job.
    assert jobs.index(NAME) == jobs.index("nginx") - 1
    assert set(registry.load()) < set(jobs)

    rules = yaml.safe_load((scaffold / ALERTS).read_text())["groups"]
    [absent] = [
        rule["expr"]
        for group in rules
        for rule in group["rules"]
        if rule.get("alert") == "ServiceAbsent"
    ]
    jobs_absent = set(re.findall(r'absent\(up\{job="([a-z0-9]+)"\}\)', absent))
    assert jobs_absent == {*registry.load(scaffold / "services" / "registry.toml"), "nginx"}

    services = list(registry.load(scaffold / "services" / "registry.toml"))
    committed = {path.name: path.read_text() for path in (scaffold / "dashboards").glob("*.json")}
    assert committed == dashboards.rendered(services)
    assert f"service-{NAME}.json" in committed
    assert f'|{NAME}\\"}})' in committed["overview.json"]  # its instances up, with the others'


def test_the_new_service_is_deployed_by_the_helm_chart_behind_its_gateway(scaffold: Path) -> None:
    values = yaml.safe_load((scaffold / "charts" / "shop" / "values.yaml").read_text())
    assert values["services"][NAME] == {"prefixes": [NAME]}
    assert (
        chart.stale(
            chart.rendered(scaffold, registry.load(scaffold / "services" / "registry.toml"))
        )
        == []
    )
    assert f"upstream {NAME} {{" in (scaffold / "charts/shop/files/gateway/nginx.conf").read_text()

    rendered = subprocess.run(
        [str(ROOT / ".tools" / "bin" / "helm"), "template", "shop", str(scaffold / "charts" / "shop"),
         "--values", str(ROOT / "charts" / "shop" / "ci" / "minimal-values.yaml")],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    objects = {
        (doc["kind"], doc["metadata"]["name"]) for doc in yaml.safe_load_all(rendered.stdout) if doc
    }
    assert {("Deployment", NAME), ("Service", NAME), ("Job", f"{NAME}-prepare")} <= objects


def test_an_alert_file_without_nginx_last_in_service_absent_stops_the_plan(tmp_path: Path) -> None:
    copy_shared(tmp_path)
    alerts = (ROOT / ALERTS).read_text()
    (tmp_path / ALERTS).write_text(alerts.replace('or absent(up{job="nginx"})', ""))

    with pytest.raises(SystemExit, match="ServiceAbsent's expr has no line"):
        new_service.plan(tmp_path, NAME)


async def test_its_probes_answer_through_the_gateway(
    base: str, http: aiohttp.ClientSession
) -> None:
    for probe in ("healthz", "readyz"):
        async with http.get(f"{base}/api/v1/{NAME}/{probe}") as response:
            assert response.status == 200, await response.text()


async def test_its_openapi_document_is_served_through_the_gateway(
    base: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{base}/api/v1/{NAME}/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    assert document["info"]["title"] == NAME
    notes = document["paths"][f"/api/v1/{NAME}/notes"]["post"]
    assert notes["requestBody"]["content"]["application/json"]["schema"]
    assert notes["security"] == [{"bearer": []}]


async def test_a_note_added_through_the_gateway_is_published_and_counted(
    base: str, instances: list[str], http: aiohttp.ClientSession, nats_client: Nats
) -> None:
    # given a subscriber to the service's events and a signed-in caller
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def deliver(message: Msg) -> None:
        await received.put(json.loads(message.data))

    subscription = await nats_client.subscribe(f"shop.{NAME}.note.added", cb=deliver)
    async with http.post(f"{base}/api/v1/auth/login", json=ADMIN) as response:
        assert response.status == 200, await response.text()
        token = (await response.json())["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "first-note"}

    try:
        # when a note is added through the gateway
        body = {"text": "hello from the gateway"}
        async with http.post(f"{base}/api/v1/{NAME}/notes", json=body, headers=headers) as r:
            assert r.status == 201, await r.text()
            note = await r.json()

        # then its event reaches the broker through the outbox relay
        event = await asyncio.wait_for(received.get(), timeout=15)
        assert event["type"] == "note.added"
        assert event["data"] == note
    finally:
        await subscription.unsubscribe()

    # and the instances' metrics count the request and the published event (the relay counts it
    # once JetStream acknowledges, which may come after the subscriber already has the message)
    async def exposition() -> str:
        text = ""
        for instance in instances:
            async with http.get(f"http://{instance}/metrics") as response:
                text += await response.text()
        return text

    published = f'events_published_total{{service="{NAME}",type="note.added"}} 1.0'
    deadline = asyncio.get_running_loop().time() + 10
    metrics = await exposition()
    while published not in metrics and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
        metrics = await exposition()
    assert re.search(rf'http_requests_total{{[^}}]*route="/api/v1/{NAME}/notes"', metrics)
    assert published in metrics
