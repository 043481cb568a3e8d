"""The compose platform: its files valid (docker-compose's own check and the compose spec's
schema), and the platform run for real on stand-in images (compose/local.yaml: no registry
here): healthy, a shopper's journey through its gateway, `--scale orders=3` spread over by the
gateway, and brought down with its volumes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import gateway as gateway_config
import pytest
import registry
import yaml
from e2e_support import (
    NOTIFICATIONS_CLIENT_SECRET,
    ORDERS_CLIENT_SECRET,
    ROOT,
    STRIPE_WEBHOOK_SECRET,
    admin_headers,
    expect_json,
)
from prometheus_client.parser import text_string_to_metric_families

from shopkit.settings import read_env_file
from shopkit.testing.peers import free_port
from shopkit.testing.stripe import order_intent_event, sign_webhook

COMPOSE_DIR = ROOT / "compose"
PLATFORM = COMPOSE_DIR / "compose.yaml"
MONITORING = COMPOSE_DIR / "compose.monitoring.yaml"
LOCAL = COMPOSE_DIR / "local.yaml"
BASE = "shop-python-base:bookworm"
# Secrets of .env.example the platform requires (compose.yaml's `${NAME:?...}`), beside the
# service credentials and webhook secret the end-to-end tests share.
EXAMPLE_SECRETS = ("SIGNING_KEYS", "PASSWORD_PEPPER", "ADMIN_EMAIL", "ADMIN_PASSWORD")
EXAMPLE_SECRETS += ("STRIPE_API_KEY", "UNSUBSCRIBE_SECRET")
# Cold: the stand-ins' Debian packages and the services' images (cached by the images test).
UP_TIMEOUT = 900
T = TypeVar("T")


def _environment(**values: str) -> dict[str, str]:
    """What docker-compose sees: no variable of this machine's shell leaks into the platform
    (a MONGO_URL of the local stack would), only these and the example's secrets."""
    example = read_env_file(ROOT / ".env.example")
    return {
        # Debian's docker CLI first: compose builds through it, with BuildKit.
        "PATH": "/usr/bin:/usr/sbin:/bin:/sbin:" + os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/root"),
        "DOCKER_BUILDKIT": "1",
        "COMPOSE_DOCKER_CLI_BUILD": "1",
        # The example secrets are refused unless the platform runs as `local`.
        "ENVIRONMENT": "local",
        **{name: example[name] for name in EXAMPLE_SECRETS},
        "ORDERS_CLIENT_SECRET": ORDERS_CLIENT_SECRET,
        "NOTIFICATIONS_CLIENT_SECRET": NOTIFICATIONS_CLIENT_SECRET,
        "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
        # Local use: the platform's own stripe-mock and Mailpit.
        "STRIPE_API_URL": "http://stripe-mock:12111",
        "SMTP_HOST": "mailpit",
        "GRAFANA_ADMIN_PASSWORD": "grafana-" + uuid.uuid4().hex,
        **values,
    }


def _compose(
    files: Sequence[Path],
    *argv: str,
    env: dict[str, str] | None = None,
    project: str = "shop-config",
    timeout: float = 120,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    options = [part for file in files for part in ("--file", str(file))]
    done = subprocess.run(
        ["docker-compose", "--project-name", project, *options, *argv],
        cwd=ROOT,
        env=env if env is not None else _environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _config(*files: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(_compose(files, "config").stdout)
    return config


# --- the files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dockerfile", sorted((COMPOSE_DIR / "standins").glob("*.Dockerfile")), ids=str
)
def test_the_stand_in_images_are_hadolint_clean(dockerfile: Path) -> None:
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "hadolint"), str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "files",
    [(PLATFORM,), (PLATFORM, MONITORING), (PLATFORM, LOCAL), (PLATFORM, MONITORING, LOCAL)],
    ids=["platform", "monitoring", "local", "monitoring-local"],
)
def test_each_combination_of_the_compose_files_passes_docker_composes_own_check(
    files: tuple[Path, ...],
) -> None:
    _compose(files, "config", "--quiet")


def test_the_compose_files_follow_the_compose_specification_schema() -> None:
    done = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "check-jsonschema"),
            *("--builtin-schema", "vendor.compose-spec"),
            *(str(file) for file in (PLATFORM, MONITORING, LOCAL)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_missing_secret_stops_compose_before_anything_starts() -> None:
    env = _environment()
    del env["SIGNING_KEYS"]

    done = _compose((PLATFORM,), "config", "--quiet", env=env, check=False)

    assert done.returncode != 0
    assert "set SIGNING_KEYS" in done.stderr


def test_every_service_of_the_registry_runs_in_compose_from_the_one_recipe() -> None:
    services = _config(PLATFORM)["services"]

    for name in registry.load():
        build = services[name]["build"]
        assert Path(build["context"]) == ROOT
        assert build["dockerfile"] == "services/Dockerfile"
        assert build["args"]["SERVICE"] == name
        assert services[name]["depends_on"]["mongo"] == {"condition": "service_healthy"}
        assert services["gateway"]["depends_on"][name] == {"condition": "service_healthy"}


def test_compose_builds_on_the_dockerfiles_pinned_base_unless_told_otherwise() -> None:
    dockerfile = (ROOT / "services" / "Dockerfile").read_text()
    default = next(
        line.partition("=")[2]
        for line in dockerfile.splitlines()
        if line.startswith("ARG PYTHON_IMAGE=")
    )

    args = _config(PLATFORM)["services"]["users"]["build"]["args"]

    assert args["PYTHON_IMAGE"] == default


def test_the_compose_gateway_is_the_template_rendered_for_compose() -> None:
    # Re-render with `uv run python scripts/gateway.py --compose --output compose/gateway/nginx.conf`.
    assert gateway_config.COMPOSE_CONFIG.read_text() == gateway_config.render_compose()


def test_prometheus_finds_every_instance_of_each_service_by_its_name_and_the_gateway() -> None:
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    for name in registry.load():
        [discovery] = jobs[name]["dns_sd_configs"]
        assert (discovery["names"], discovery["type"], discovery["port"]) == ([name], "A", 8000)
    assert jobs["nginx"]["static_configs"] == [{"targets": ["gateway-exporter:9113"]}]
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    checked = subprocess.run(
        ["promtool", "check", "config", "--syntax-only", str(COMPOSE_DIR / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- the platform, running ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Platform:
    project: str
    env: dict[str, str]
    gateway: str
    stripe: str

    def compose(self, *argv: str, timeout: float = 120) -> str:
        files = (PLATFORM, LOCAL)
        return _compose(files, *argv, env=self.env, project=self.project, timeout=timeout).stdout

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "--quiet", service).split()


def _docker(*argv: str, timeout: float = 60) -> str:
    done = subprocess.run(
        ["/usr/bin/docker", *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def _wait_healthy(platform: Platform, timeout: float = 180) -> None:
    """Until every container of the project is healthy (or running, when it has no check)."""
    deadline = time.monotonic() + timeout
    while True:
        ids = platform.compose("ps", "--quiet").split()
        states = _docker(
            "inspect",
            "--format",
            "{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
            *ids,
        ).splitlines()
        waiting = [state for state in states if not state.endswith((" healthy", " running"))]
        if not waiting:
            return
        assert time.monotonic() < deadline, f"not healthy in time: {waiting}"
        time.sleep(1)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The platform from compose.yaml and local.yaml, built and started once for this module:
    one compose project of its own, on free loopback ports, brought down with its volumes
    whatever happens (its logs kept in the test's temporary folder)."""
    base = subprocess.run(
        ["bash", "scripts/base-image.sh", BASE], cwd=ROOT, capture_output=True, text=True
    )
    assert base.returncode == 0, base.stderr
    gateway_port, stripe_port = free_port(), free_port()
    env = _environment(
        PYTHON_IMAGE=base.stdout.split()[-1],
        GATEWAY_PORT=str(gateway_port),
        STRIPE_MOCK_PORT=str(stripe_port),
        MAILPIT_PORT=str(free_port()),
    )
    platform = Platform(
        project="shoptest" + uuid.uuid4().hex[:8],
        env=env,
        gateway=f"http://127.0.0.1:{gateway_port}",
        stripe=f"http://127.0.0.1:{stripe_port}",
    )
    files = (PLATFORM, LOCAL)
    try:
        started = time.monotonic()
        platform.compose("up", "--build", "--detach", timeout=UP_TIMEOUT)
        _wait_healthy(platform)
        print(f"compose up --build, healthy: {time.monotonic() - started:.0f} s")
        yield platform
    finally:
        logs = tmp_path_factory.mktemp("compose") / "platform.log"
        written = _compose(
            files,
            "logs",
            "--no-color",
            "--timestamps",
            env=env,
            project=platform.project,
            check=False,
        )
        logs.write_text(written.stdout + written.stderr)
        print(f"the platform's logs: {logs}")
        # Never raising here: a failure to start must not be hidden behind one to stop.
        down = _compose(
            files, "down", "--volumes", "--remove-orphans", "--timeout", "10",
            env=env, project=platform.project, timeout=180, check=False,
        )  # fmt: skip
    assert down.returncode == 0, down.stdout + down.stderr


# Each named database's unique indexes by collection, read from inside the platform (one
# process: every service's database is on the same MongoDB).
UNIQUE_INDEXES = """
import json, os, sys
from pymongo import MongoClient
client = MongoClient(os.environ["MONGO_URL"], serverSelectionTimeoutMS=5000)
print(json.dumps({
    name: {
        collection: sorted(
            next(iter(i["key"])) for i in client[name][collection].list_indexes() if i.get("unique")
        )
        for collection in client[name].list_collection_names()
    }
    for name in sys.argv[1:]
}))
"""


# The unique indexes the invariants rest on: an event stream's optimistic concurrency (a second
# writer of the same version collides on the event's id) and an email naming one account.
# notifications keys its records by _id, always unique.
INVARIANT_INDEXES = {
    "users": {"emails": "email", "events": "id", "token_events": "id"},
    "products": {"events": "id", "reservation_events": "id"},
    "carts": {"cart_events": "id"},
    "orders": {"events": "id"},
    "payments": {"events": "id"},
}


@pytest.mark.timeout(UP_TIMEOUT + 300)
def test_every_service_is_healthy_only_once_its_unique_indexes_exist(platform: Platform) -> None:
    [users] = platform.containers("users")

    found = json.loads(_docker("exec", users, "python3", "-c", UNIQUE_INDEXES, *INVARIANT_INDEXES))

    for name, expected in INVARIANT_INDEXES.items():
        for collection, field in expected.items():
            assert field in found[name].get(collection, []), f"{name}.{collection}: {found[name]}"


async def _eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 30) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await check()
        if found is not None:
            return found
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.25)


async def _published_product(gateway: str, http: aiohttp.ClientSession) -> tuple[str, str]:
    """A product on sale with one SKU and 5 units of stock, as staff make it: (slug, SKU)."""
    staff = await admin_headers(gateway, http)
    tag = uuid.uuid4().hex[:8]
    body = {
        "slug": f"teapot-{tag}",
        "name": f"Teapot {tag}",
        "status": "published",
        "variants": [{"sku": f"POT-{tag}", "price": {"amount": 2450, "currency": "EUR"}}],
    }
    async with http.post(f"{gateway}/api/v1/products", json=body, headers=staff) as r:
        await expect_json(r, 201)
    async with http.post(
        f"{gateway}/api/v1/inventory/POT-{tag}/receipts",
        json={"quantity": 5, "reason": "delivery"},
        headers={**staff, "Idempotency-Key": uuid.uuid4().hex},
    ) as r:
        await expect_json(r, 201)
    return f"teapot-{tag}", f"POT-{tag}"


async def _signed_in(gateway: str, http: aiohttp.ClientSession) -> dict[str, str]:
    """A new customer, registered and signed in: the Authorization header."""
    email = f"shopper-{uuid.uuid4().hex[:8]}@example.com"
    credentials = {"email": email, "password": "correct horse battery"}
    async with http.post(
        f"{gateway}/api/v1/auth/register", json={**credentials, "name": "Ada"}
    ) as r:
        await expect_json(r, 201)
    async with http.post(f"{gateway}/api/v1/auth/login", json=credentials) as r:
        return {"Authorization": f"Bearer {(await expect_json(r, 200))['access_token']}"}


@pytest.mark.timeout(120)
async def test_a_shopper_finds_buys_and_pays_through_the_compose_gateway(
    platform: Platform, http: aiohttp.ClientSession
) -> None:
    gateway = platform.gateway
    slug, sku = await _published_product(gateway, http)
    shopper = await _signed_in(gateway, http)

    async with http.get(f"{gateway}/api/v1/products/{slug}") as r:
        assert [v["sku"] for v in (await expect_json(r, 200))["variants"]] == [sku]

    async def found() -> list[Any] | None:
        async with http.get(f"{gateway}/api/v1/search", params={"q": slug.replace("-", " ")}) as r:
            # Indexing follows the product's event; a search node still warming up on a busy
            # machine answers its first queries late (products' 503), which a retry outlives.
            if r.status == 503:
                return None
            items: list[Any] = (await expect_json(r, 200))["items"]
        return items or None

    assert (await _eventually(found, timeout=60))[0]["slug"] == slug
    async with http.post(
        f"{gateway}/api/v1/carts/current/lines", json={"sku": sku, "quantity": 2}, headers=shopper
    ) as r:
        assert r.status in (200, 201), await r.text()
    address = {"recipient": "Ada", "line1": "Unter den Linden 1", "city": "Berlin"}
    address |= {"postal_code": "10117", "country": "DE"}
    async with http.post(
        f"{gateway}/api/v1/orders",
        json={"shipping_method": "standard", "shipping_address": address},
        headers={**shopper, "Idempotency-Key": uuid.uuid4().hex},
    ) as r:
        order = await expect_json(r, 201)
    async with http.post(
        f"{platform.stripe}/v1/payment_intents/{order['payment']['payment_intent_id']}/confirm",
        data={"payment_method": "pm_card_visa"},
        headers={"Authorization": "Bearer sk_test_123"},
    ) as r:
        assert r.status == 200, await r.text()
    body = order_intent_event("payment_intent.succeeded", order)
    signature = sign_webhook(body, STRIPE_WEBHOOK_SECRET)
    async with http.post(
        f"{gateway}/api/v1/payments/webhooks/stripe",
        data=body,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    ) as r:
        assert r.status == 200, await r.text()

    async def paid() -> dict[str, Any] | None:
        async with http.get(f"{gateway}/api/v1/orders/{order['id']}", headers=shopper) as r:
            current: dict[str, Any] = await expect_json(r, 200)
        return current if current["payment_status"] == "paid" else None

    assert (await _eventually(paid))["total"] == order["total"]


def _orders_listed(container: str) -> float:
    """How many `GET /api/v1/orders` one orders instance has answered (its own /metrics)."""
    read = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/metrics').read().decode())"
    text = _docker("exec", container, "python3", "-c", read)
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_requests_total"
        and sample.labels.get("route") == "/api/v1/orders"
        and sample.labels.get("method") == "GET"
    )


@pytest.mark.timeout(300)
async def test_scaling_orders_to_three_spreads_the_gateways_requests_over_all_three(
    platform: Platform, http: aiohttp.ClientSession
) -> None:
    shopper = await _signed_in(platform.gateway, http)

    platform.compose("up", "--detach", "--no-recreate", "--scale", "orders=3", timeout=240)
    _wait_healthy(platform)
    instances = platform.containers("orders")
    assert len(instances) == 3

    # The gateway reloads within seconds of the new addresses (compose/gateway/run.sh); the new
    # instances may still be warming up on a busy machine.
    deadline = time.monotonic() + 90
    while True:
        before = {container: _orders_listed(container) for container in instances}
        for _ in range(30):
            async with http.get(f"{platform.gateway}/api/v1/orders", headers=shopper) as r:
                await expect_json(r, 200)
        served = {c: _orders_listed(c) - before[c] for c in instances}
        if all(served.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)
    assert all(served.values()), served
    assert sum(served.values()) == 30


@pytest.mark.timeout(600)
def test_the_gateway_serves_while_a_service_has_no_instance_answering_it_502() -> None:
    # given the gateway's image, and every service's name resolving but notifications'
    base = subprocess.run(
        ["bash", "scripts/base-image.sh", BASE], cwd=ROOT, capture_output=True, text=True
    )
    assert base.returncode == 0, base.stderr
    image = "shop-standin-nginx:gateway-test"
    _docker("build", "--quiet", "--file", str(COMPOSE_DIR / "standins" / "debian.Dockerfile"),
            "--target", "gateway", "--build-arg", f"PYTHON_IMAGE={base.stdout.split()[-1]}",
            "--tag", image, str(COMPOSE_DIR / "standins"), timeout=600)  # fmt: skip
    hosts = [f"--add-host={name}:127.0.0.1" for name in registry.load() if name != "notifications"]
    name = "shoptest-gateway-" + uuid.uuid4().hex[:8]
    # when it starts (as compose runs it: read-only, its state on a tmpfs)
    _docker("run", "--detach", "--name", name, "--read-only", "--tmpfs", "/run/gateway", *hosts,
            "--volume", f"{COMPOSE_DIR / 'gateway'}:/etc/nginx/shop:ro",
            "--entrypoint", "/bin/sh", image, "/etc/nginx/shop/run.sh")  # fmt: skip
    try:
        ask = (
            "import sys, urllib.request, urllib.error\n"
            "try:\n    answer = urllib.request.urlopen('http://127.0.0.1:8080' + sys.argv[1], timeout=5)\n"
            "except urllib.error.HTTPError as error:\n    answer = error\n"
            "print(answer.status, answer.headers['Content-Type'])\n"
        )
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(["/usr/bin/docker", "exec", name, "python3", "-c", ask, "/healthz"],
                                  capture_output=True, text=True, check=False)  # fmt: skip
            if done.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        # then it is up, and only notifications' routes fail, as a problem
        assert done.stdout.split()[0] == "200", done.stdout + done.stderr + _docker("logs", name)
        answered = _docker("exec", name, "python3", "-c", ask, "/api/v1/notifications/preferences")
        assert answered == "502 application/problem+json"
    finally:
        _docker("rm", "--force", name)
