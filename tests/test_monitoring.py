"""Monitoring as code, checked: Prometheus' rules and their unit tests, Alertmanager's routes and the
dashboards' JSON; then Debian's Prometheus, scraping every instance of the end-to-end stack and the
gateway's exporter with the project's rules loaded, finds data for every recording rule and every
dashboard query once a shopping journey has run through the gateway."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from e2e_support import admin_headers, expect_json
from test_checkout_e2e import ADDRESS, _add, _customer, _place, _product, _until, _webhook

from shopkit.testing.peers import Peer, free_port, require_binary
from shopkit.testing.stripe import order_intent_event, webhook_event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import dashboards  # noqa: E402
import registry  # noqa: E402
import render_dashboards  # noqa: E402

PROMETHEUS = ROOT / "observability" / "prometheus"
RULES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERTMANAGER = ROOT / "observability" / "alertmanager" / "alertmanager.yml"
GRAFANA = ROOT / "observability" / "grafana" / "provisioning"
# Series only a failure makes, which a journey through healthy services cannot: a handler failing
# every delivery (dead-lettered events), a mail or SMS refused for good or after every retry (the
# shared Mailpit accepts every address). Their alerts are unit-tested with promtool instead.
NEEDS_A_BROKEN_PEER = {
    "service:events_dead_lettered:increase15m": "a consumer's handler failing every delivery",
    "shop:notifications_failed:increase15m": "an SMTP server or Twilio refusing a message",
}
# Where the live test also draws the dashboards' PNGs (dashboards/png to refresh the committed
# ones); unset, they go to the test's temporary folder.
PNG_FOLDER = "DASHBOARD_PNG_DIR"
JOURNEY_SECONDS = 30


def run(*argv: str | Path) -> str:
    """Run a tool; its standard output, once it exited 0 (else all it said is the failure)."""
    done = subprocess.run(
        [str(arg) for arg in argv], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def recording_rules() -> list[str]:
    return [
        rule["record"]
        for path in RULES
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "record" in rule
    ]


def alerts() -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for path in RULES
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def dashboard_queries() -> list[str]:
    return [
        target["expr"]
        for path in sorted((ROOT / "dashboards").glob("*.json"))
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]
        for target in panel["targets"]
    ]


# --- the files, checked by the tools that read them


def test_the_rules_pass_promtools_check() -> None:
    output = run(require_binary("promtool"), "check", "rules", *RULES)

    assert output.count("SUCCESS") == len(RULES)


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    run(require_binary("promtool"), "test", "rules", *RULE_TESTS)


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])

    assert set(alerts()) - fired == set()
    assert set(alerts()) - quiet == set()


def test_a_service_without_targets_is_an_alert_for_every_service_of_the_registry() -> None:
    expression = alerts()["ServiceAbsent"]["expr"]

    absent = set(re.findall(r'absent\(up\{job="([a-z0-9]+)"\}\)', expression))

    assert absent == {*registry.load(), "nginx"}


def test_alertmanager_pages_critical_alerts_and_mails_the_rest() -> None:
    amtool = require_binary("amtool")
    run(amtool, "check-config", ALERTMANAGER)

    def receiver(*labels: str) -> str:
        routed = run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
        return routed.strip().splitlines()[-1]

    assert receiver("severity=critical", "alertname=ServiceDown") == "pager"
    assert receiver("severity=warning", "alertname=PaymentDisputed") == "team-email"


def test_the_committed_dashboards_are_the_ones_the_generator_writes() -> None:
    committed = {
        path.name: path.read_text(encoding="utf-8") for path in (ROOT / "dashboards").glob("*.json")
    }

    assert committed == dashboards.rendered(), "run: uv run python scripts/dashboards.py"


def test_every_service_of_the_registry_has_its_dashboard() -> None:
    files = dashboards.rendered(["users", "reviews"])

    assert {"service-users.json", "service-reviews.json"} <= set(files)
    assert 'service=\\"reviews\\"' in files["service-reviews.json"]


@pytest.mark.parametrize("path", sorted((ROOT / "dashboards").glob("*.json")), ids=str)
def test_a_dashboard_has_unique_panels_on_the_grid_and_only_the_provisioned_datasource(
    path: Path,
) -> None:
    text = path.read_text(encoding="utf-8")
    dashboard = json.loads(text)
    panels = dashboard["panels"]

    assert "${" not in text  # no import-time placeholder (${DS_PROMETHEUS}) left
    assert dashboard["uid"]
    assert dashboard["title"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        place = panel["gridPos"]
        assert place["x"] >= 0
        assert place["x"] + place["w"] <= 24
        assert place["h"] > 0
        covered = {
            (x, y)
            for x in range(place["x"], place["x"] + place["w"])
            for y in range(place["y"], place["y"] + place["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert panel["targets"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "prometheus"
            assert target["expr"].strip()


def test_grafana_provisions_the_datasource_the_dashboards_name_and_their_folder() -> None:
    [datasource] = load_yaml(GRAFANA / "datasources" / "prometheus.yml")["datasources"]
    [provider] = load_yaml(GRAFANA / "dashboards" / "shop.yml")["providers"]

    assert (datasource["uid"], datasource["type"]) == ("prometheus", "prometheus")
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


# --- a real Prometheus on the end-to-end stack


def scrape_config(jobs: Mapping[str, Sequence[str]], interval: str) -> dict[str, Any]:
    """Prometheus' configuration: one job per service (and `nginx`), the project's rules."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in RULES],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(targets)}]}
            for job, targets in jobs.items()
        ],
    }


def test_the_scrape_configuration_passes_promtools_check(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    jobs = {name: [f"127.0.0.1:{port}" for port in s.ports] for name, s in registry.load().items()}
    config.write_text(json.dumps(scrape_config({**jobs, "nginx": ["127.0.0.1:9113"]}, "15s")))

    run(require_binary("promtool"), "check", "config", config)


@pytest.fixture(scope="module")
def nginx_exporter(
    gateway: str, internal_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Debian's prometheus-nginx-exporter reading the gateway's stub_status: its address."""
    port = free_port()
    peer = Peer(
        name="nginx-exporter",
        argv=[
            require_binary("prometheus-nginx-exporter"),
            f"-nginx.scrape-uri={internal_url}/nginx_status",
            f"-web.listen-address=127.0.0.1:{port}",
        ],
        log_path=tmp_path_factory.mktemp("nginx-exporter") / "exporter.log",
        port=port,
        ready_url=f"http://127.0.0.1:{port}/metrics",
    ).start(timeout=20)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        peer.stop()


@pytest.fixture(scope="module")
def prometheus(
    nginx_exporter: str,
    users_instances: list[str],
    products_instances: list[str],
    carts_instances: list[str],
    orders_instances: list[str],
    payments_instances: list[str],
    notifications_instances: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """Prometheus scraping every instance each second and evaluating the rules as often: its URL."""
    jobs = {
        "users": users_instances,
        "products": products_instances,
        "carts": carts_instances,
        "orders": orders_instances,
        "payments": payments_instances,
        "notifications": notifications_instances,
        "nginx": [nginx_exporter],
    }
    assert set(jobs) == {*registry.load(), "nginx"}, "a service of the registry is not scraped"
    state = tmp_path_factory.mktemp("prometheus")
    config = state / "prometheus.yml"
    config.write_text(json.dumps(scrape_config(jobs, "1s")))
    port = free_port()
    peer = Peer(
        name="prometheus",
        argv=[
            require_binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={state / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log_path=state / "prometheus.log",
        port=port,
        ready_url=f"http://127.0.0.1:{port}/-/ready",
    ).start(timeout=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        peer.stop()


async def _journey(gateway: str, http: aiohttp.ClientSession) -> None:
    """What the dashboards show, through the gateway: carts opened by a user and a guest, an order
    paid for another amount than its total and then disputed, a checkout refused for short stock,
    a payment declined, notification preferences read."""
    staff = await admin_headers(gateway, http)
    sku = await _product(gateway, http, staff, amount=1250, stock=3)
    first, _ = await _customer(gateway, http)
    second, _ = await _customer(gateway, http)
    await _add(gateway, http, first, sku, 2)
    await _add(gateway, http, second, sku, 2)  # both fit while neither has ordered

    order = await _place(gateway, http, first)
    async with http.post(
        f"{gateway}/api/v1/orders",
        json={"shipping_method": "standard", "shipping_address": ADDRESS},
        headers={**second, "Idempotency-Key": uuid.uuid4().hex},
    ) as r:
        assert r.status == 409, await r.text()  # one unit left: the reservation is refused

    short = order_intent_event("payment_intent.succeeded", order, amount_received=1000)
    assert (await _webhook(gateway, http, short)).status == 200
    await _until(gateway, http, order["id"], first, payment_status="paid")
    dispute = {
        "id": "dp_" + uuid.uuid4().hex[:12],
        "object": "dispute",
        "payment_intent": order["payment"]["payment_intent_id"],
        "amount": 1000,
        "currency": "eur",
        "reason": "fraudulent",
    }
    disputed = webhook_event("charge.dispute.created", dispute)
    assert (await _webhook(gateway, http, disputed)).status == 200

    other = await _product(gateway, http, staff, amount=2000, stock=5)
    guest = await _add(gateway, http, {}, other, 1)
    declined = await _place(gateway, http, guest, email="guest@example.com")
    failure = {"code": "card_declined", "decline_code": "insufficient_funds"}
    failed = order_intent_event(
        "payment_intent.payment_failed", declined, last_payment_error=failure
    )
    assert (await _webhook(gateway, http, failed)).status == 200

    async with http.get(f"{gateway}/api/v1/notifications/preferences", headers=first) as r:
        await expect_json(r, 200)


async def _result(http: aiohttp.ClientSession, prometheus: str, expr: str) -> list[Any]:
    async with http.get(f"{prometheus}/api/v1/query", params={"query": expr}) as r:
        body = await expect_json(r, 200)
    result: list[Any] = body["data"]["result"]
    return result


# Half a minute of journeys, up to a minute of waiting for the series, then the drawing: more than
# the default 120 s on a loaded 2-core machine.
@pytest.mark.timeout(300)
async def test_after_a_journey_every_recording_rule_and_dashboard_query_has_data(
    gateway: str, prometheus: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # given Prometheus scraping the stack and the gateway, with the project's rules
    started = time.monotonic()
    # when customers shop through the gateway for half a minute (the PNGs show rates then), at
    # least twice (a rate needs two samples of a counter)
    for journeys in itertools.count(1):
        await _journey(gateway, http)
        if journeys >= 2 and time.monotonic() - started > JOURNEY_SECONDS:
            break

    # then every recording rule and every dashboard query answers series (the exempt ones
    # aside), within the seconds a few scrapes and evaluations take
    queries = sorted({*recording_rules(), *dashboard_queries()} - set(NEEDS_A_BROKEN_PEER))
    missing = queries
    deadline = time.monotonic() + 60
    while missing and time.monotonic() < deadline:
        await asyncio.sleep(1)
        missing = [expr for expr in missing if not await _result(http, prometheus, expr)]
    assert not missing, "no data for: " + "; ".join(missing)

    # and every dashboard draws from it (into dashboards/png with DASHBOARD_PNG_DIR=dashboards/png)
    out = Path(os.environ.get(PNG_FOLDER) or tmp_path)
    minutes = (time.monotonic() - started) / 60
    drawn = await asyncio.to_thread(render_dashboards.render_all, prometheus, minutes, out)
    assert sorted(path.name for path in drawn) == sorted(
        name.replace(".json", ".png") for name in dashboards.rendered()
    )
