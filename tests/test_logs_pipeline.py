"""Centralised logs: the services' ECS JSON lines, shipped by the real Filebeat (7.10.2 OSS, built by
scripts/install-filebeat.sh) with the compose platform's configuration into the real OpenSearch
node, carry one checkout's trace id in every service it touched; and the Kibana saved objects
that search them are well formed and name fields the shipped lines have."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from e2e_support import admin_headers
from test_checkout_e2e import _add, _customer, _place, _product

from shopkit.testing.peers import Peer, free_port
from shopkit.traces import Span

ROOT = Path(__file__).resolve().parent.parent
FILEBEAT_CONFIG = ROOT / "observability" / "filebeat" / "filebeat.yml"
TEMPLATE = ROOT / "observability" / "filebeat" / "shop-logs.template.json"
SAVED_OBJECTS = ROOT / "observability" / "kibana" / "saved-objects.ndjson"
LOGS = "shop-logs-*"
# orders serves the checkout and calls carts, products and payments (HTTP, through the gateway's
# internal listener); notifications hears of it only by `order.placed` (an event, through JetStream).
CHECKOUT_REACHES = {"orders", "carts", "products", "payments", "notifications"}
# A KQL field name before its colon: `trace.id : *`, `log.level : ("error" or "critical")`.
_KQL_FIELD = re.compile(r"([\w.@]+)\s*:")


def saved_objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SAVED_OBJECTS.read_text().splitlines() if line.strip()]


def search_source(saved_search: dict[str, Any]) -> dict[str, Any]:
    source: dict[str, Any] = json.loads(
        saved_search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
    )
    return source


def fields_searched() -> set[str]:
    """Every field the saved searches show, sort by or query."""
    fields: set[str] = set()
    for saved in saved_objects():
        if saved["type"] == "search":
            fields |= set(saved["attributes"]["columns"])
            fields |= {field for field, _ in saved["attributes"]["sort"]}
            fields |= set(_KQL_FIELD.findall(search_source(saved)["query"]["query"]))
    return fields


def test_the_saved_objects_are_a_data_view_and_two_searches_whose_references_resolve() -> None:
    objects = saved_objects()
    # each line is one saved object as Kibana exports it
    for saved in objects:
        assert {"type", "id", "attributes", "references"} <= set(saved), saved
        assert isinstance(saved["attributes"], dict)
        for reference in saved["references"]:
            assert set(reference) == {"name", "type", "id"}, reference
    keys = [(saved["type"], saved["id"]) for saved in objects]
    assert len(set(keys)) == len(keys), "an object is defined twice"
    # every reference names an object of the file
    for saved in objects:
        for reference in saved["references"]:
            assert (reference["type"], reference["id"]) in keys, reference
    # the data view covers the indices Filebeat writes, by their timestamp
    (data_view,) = [saved for saved in objects if saved["type"] == "index-pattern"]
    assert data_view["attributes"]["title"] == LOGS
    assert json.loads(TEMPLATE.read_text())["index_patterns"] == [LOGS]
    assert data_view["attributes"]["timeFieldName"] == "@timestamp"
    # and each search reads it through the reference its source names
    searches = {
        saved["attributes"]["title"]: saved for saved in objects if saved["type"] == "search"
    }
    assert set(searches) == {"Errors by service", "One trace across services"}
    for saved in searches.values():
        source = search_source(saved)
        (reference,) = [r for r in saved["references"] if r["name"] == source["indexRefName"]]
        assert (reference["type"], reference["id"]) == ("index-pattern", data_view["id"])
        assert source["query"]["language"] == "kuery"
    assert "trace.id" in search_source(searches["One trace across services"])["query"]["query"]


@pytest.fixture(scope="module")
def filebeat_binary() -> str:
    """Filebeat 7.10.2 OSS, built by the project on first use (a minute or two), then at once."""
    return subprocess.run(
        [str(ROOT / "scripts" / "install-filebeat.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_compose_configuration_passes_filebeats_own_check(
    filebeat_binary: str, tmp_path: Path
) -> None:
    checked = subprocess.run(
        [
            filebeat_binary,
            "test",
            "config",
            "-c",
            str(FILEBEAT_CONFIG),
            "--path.config",
            str(FILEBEAT_CONFIG.parent),
            "--path.home",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={"SEARCH_URL": "http://127.0.0.1:9200"},
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.fixture(scope="module")
def filebeat(
    filebeat_binary: str,
    opensearch_url: str,
    service_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Peer]:
    """Filebeat with the compose platform's configuration, reading the e2e services' log files
    instead of Docker's: the same processors, template and output."""
    state = tmp_path_factory.mktemp("filebeat")
    config = yaml.safe_load(FILEBEAT_CONFIG.read_text())
    config["filebeat.inputs"] = [
        {"type": "log", "paths": [str(service_logs / "*.log")], "scan_frequency": "1s"}
    ]
    config["setup.template.json.path"] = str(TEMPLATE)
    port = free_port()
    # Its stats endpoint: answering means started.
    config.update({"http.enabled": True, "http.host": "127.0.0.1", "http.port": port})
    rendered = state / "filebeat.yml"
    rendered.write_text(yaml.safe_dump(config))
    rendered.chmod(0o600)  # Filebeat refuses a configuration others may write
    peer = Peer(
        name="filebeat",
        argv=[filebeat_binary, "-e", "-c", str(rendered), "--path.home", str(state)],
        log_path=state / "filebeat.log",
        env={"SEARCH_URL": opensearch_url},
        port=port,
        ready_url=f"http://127.0.0.1:{port}/",
    ).start(timeout=30)
    try:
        yield peer
    finally:
        peer.stop()


async def search(http: aiohttp.ClientSession, opensearch_url: str, body: dict[str, Any]) -> Any:
    async with http.post(f"{opensearch_url}/{LOGS}/_search", json=body) as response:
        if response.status == 503:
            # The day's index was just made by Filebeat's first line and its shard is starting.
            return {"hits": {"hits": [], "total": {"value": 0}}}
        assert response.status == 200, await response.text()
        return await response.json()


async def services_in_trace(
    http: aiohttp.ClientSession, opensearch_url: str, trace_id: str
) -> dict[str, list[dict[str, Any]]]:
    """The shipped lines of one trace, by the service that wrote them."""
    query = {"size": 200, "query": {"term": {"trace.id": trace_id}}}
    found: dict[str, list[dict[str, Any]]] = {}
    for hit in (await search(http, opensearch_url, query))["hits"]["hits"]:
        line = hit["_source"]
        found.setdefault(line["service"]["name"], []).append(line)
    return found


# Run alone, its set-up starts the whole end-to-end platform first (45 s on a quiet machine).
@pytest.mark.timeout(300)
async def test_one_checkouts_trace_id_is_in_the_shipped_lines_of_every_service_it_touched(
    gateway: str, http: aiohttp.ClientSession, opensearch_url: str, filebeat: Peer
) -> None:
    # given a product in stock and a customer with it in their cart
    staff = await admin_headers(gateway, http)
    sku = await _product(gateway, http, staff, amount=2500, stock=5)
    customer, _ = await _customer(gateway, http)
    await _add(gateway, http, customer, sku, 1)

    # when they check out in a trace of the test's own
    trace = Span.start()
    order = await _place(gateway, http, {**customer, "traceparent": trace.traceparent})

    # then Filebeat ships a line in that trace from every service the checkout reached
    deadline = asyncio.get_running_loop().time() + 60
    lines = await services_in_trace(http, opensearch_url, trace.trace_id)
    while missing := CHECKOUT_REACHES - set(lines):
        assert asyncio.get_running_loop().time() < deadline, (
            f"no line of trace {trace.trace_id} from {sorted(missing)}; filebeat: {filebeat.tail()}"
        )
        await asyncio.sleep(1)
        lines = await services_in_trace(http, opensearch_url, trace.trace_id)
    # each in a span of its own, below the test's; the request id and the caller go along
    spans = {line["span"]["id"] for service in lines.values() for line in service}
    assert trace.span_id not in spans
    assert len(spans) >= len(CHECKOUT_REACHES)
    placed = [
        line for line in lines["orders"] if line.get("url", {}).get("path") == "/api/v1/orders"
    ]
    assert placed, lines["orders"]
    assert placed[0]["user"]["id"] == order["customer_id"]
    assert placed[0]["http"]["request"]["id"]
    # and notifications' line names the event that carried the trace to it
    assert all(line["event"]["id"] for line in lines["notifications"])

    # and the template mapped the ids as keywords, for exact searches
    async with http.get(f"{opensearch_url}/{LOGS}/_mapping/field/trace.id,service.name") as r:
        mappings = await r.json()
    for index in mappings.values():
        for field in ("trace.id", "service.name"):
            (leaf,) = index["mappings"][field]["mapping"].values()
            assert leaf["type"] == "keyword", (field, leaf)

    # and every field the saved searches name is in the shipped lines
    for field in sorted(fields_searched()):
        body = {"size": 0, "query": {"exists": {"field": field}}}
        hits = (await search(http, opensearch_url, body))["hits"]["total"]["value"]
        assert hits > 0, f"no shipped line has {field}, which a saved search names"
