"""Elastic APM, against an intake that checks what the agent sends as APM Server does: transactions
in the kit's own trace, and nothing of the agent loaded while APM is off."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shopkit.app import build_app
from shopkit.auth import StaticKeys, public
from shopkit.http import ServiceClient
from shopkit.keys import HTTP
from shopkit.settings import KitSettings, load
from shopkit.testing.apm_intake import ApmIntake, problems_of
from shopkit.traces import parse

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
SECRET_TOKEN = "apm-test-token"


@pytest.fixture
async def intake() -> AsyncIterator[ApmIntake]:
    async with ApmIntake(secret_token=SECRET_TOKEN) as server:
        yield server


class Downstream:
    """Another service, recording the `traceparent` each call brings."""

    def __init__(self) -> None:
        self.traceparents: list[str | None] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.traceparents.append(request.headers.get("traceparent"))
        return web.json_response({})


def make_app(environ: dict[str, str], downstream_url: str = "") -> web.Application:
    settings = load(KitSettings, {"SERVICE_NAME": "things", "MONGO_URL": "unused", **environ})
    app = build_app(settings, keys=lambda _: StaticKeys(lambda: None), database=False, events=False)

    @public
    async def show(request: web.Request) -> web.Response:
        if downstream_url:
            await ServiceClient(request.app[HTTP], "other", downstream_url).request("GET", "/seen")
        return web.json_response({"id": request.match_info["id"]})

    app.router.add_get("/things/{id}", show)
    return app


async def served(app: web.Application) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def test_a_request_is_a_transaction_in_the_callers_trace_named_for_its_route(
    intake: ApmIntake,
) -> None:
    # given a service sending to APM, calling another service while it serves a request
    downstream = Downstream()
    other_app = web.Application()
    other_app.router.add_get("/seen", downstream.handle)
    other = await served(other_app)
    environ = {
        "ELASTIC_APM_SERVER_URL": intake.url,
        "ELASTIC_APM_SECRET_TOKEN": SECRET_TOKEN,
        "ELASTIC_APM_ENVIRONMENT": "test",
    }
    client = await served(make_app(environ, str(other.make_url(""))))

    # when a caller's request arrives with its traceparent, and the service stops (flushing)
    response = await client.get("/things/42", headers={"traceparent": TRACEPARENT})
    await client.close()
    await other.close()

    # then the intake accepted one transaction: the caller's trace, the caller's span as parent,
    # the kit's own span (the one in its logs and its traceresponse) as id, named for the route
    assert response.status == 200
    served_as = parse(response.headers["traceresponse"])
    assert served_as is not None
    assert intake.rejected == []
    (transaction,) = intake.events("transaction")
    assert transaction["trace_id"] == CALLER_TRACE
    assert transaction["parent_id"] == CALLER_SPAN
    assert transaction["id"] == served_as.span_id
    assert transaction["name"] == "GET /things/{id}"
    assert transaction["type"] == "request"
    assert (transaction["result"], transaction["outcome"]) == ("HTTP 2xx", "success")
    assert transaction["context"]["response"]["status_code"] == 200
    (metadata,) = intake.metadata
    assert metadata["service"]["name"] == "things"
    assert metadata["service"]["environment"] == "test"
    # and the call it made carries the kit's traceparent: that transaction is its parent
    assert downstream.traceparents == [f"00-{CALLER_TRACE}-{served_as.span_id}-01"]


async def test_a_request_without_a_trace_is_a_root_transaction_of_the_trace_the_kit_starts(
    intake: ApmIntake,
) -> None:
    environ = {"ELASTIC_APM_SERVER_URL": intake.url, "ELASTIC_APM_SECRET_TOKEN": SECRET_TOKEN}
    client = await served(make_app(environ))

    response = await client.get("/nowhere")
    await client.close()

    started = parse(response.headers["traceresponse"])
    assert started is not None
    (transaction,) = intake.events("transaction")
    assert (transaction["trace_id"], transaction["id"]) == (started.trace_id, started.span_id)
    assert "parent_id" not in transaction
    assert (transaction["name"], transaction["result"]) == ("GET unmatched", "HTTP 4xx")


def test_with_no_apm_server_url_nothing_of_the_agent_is_imported() -> None:
    # given a service built and serving a request without ELASTIC_APM_SERVER_URL, in a fresh
    # interpreter (this one has the agent loaded by the other tests)
    script = textwrap.dedent(
        """
        import asyncio, sys
        from aiohttp.test_utils import TestClient, TestServer
        from shopkit.app import build_app
        from shopkit.auth import StaticKeys
        from shopkit.settings import KitSettings, load

        async def main():
            settings = load(KitSettings, {"SERVICE_NAME": "things", "MONGO_URL": "unused"})
            app = build_app(settings, keys=lambda _: StaticKeys(lambda: None),
                            database=False, events=False)
            async with TestClient(TestServer(app, host="127.0.0.1")) as client:
                assert (await client.get("/healthz")).status == 200

        asyncio.run(main())
        print(sorted(name for name in sys.modules if name.startswith("elasticapm")))
        """
    )
    # when it runs, then no module of the agent was imported
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_intake_refuses_what_apm_server_refuses() -> None:
    metadata = b'{"metadata": {"service": {"name": "things", "agent": {"name": "python", "version": "6"}}}}'
    transaction = (
        b'{"transaction": {"id": "b7ad6b7169203331", "trace_id": "0af7651916cd43dd8448eb211c80319c",'
        b' "type": "request", "duration": 1.5, "span_count": {"started": 0}}}'
    )
    assert problems_of([metadata, transaction]) == []
    # the metadata must come first
    assert problems_of([transaction]) == ["line 1: expected metadata, got 'transaction'"]
    # a transaction needs its trace id, its duration and its span count
    bare = b'{"transaction": {"id": "b7ad6b7169203331", "type": "request"}}'
    assert problems_of([metadata, bare]) == [
        "line 2 (transaction): 'trace_id' required",
        "line 2 (transaction): 'duration' required, a number of milliseconds >= 0",
        "line 2 (transaction): 'span_count.started' required",
    ]
    # a service name outside the allowed characters
    odd = b'{"metadata": {"service": {"name": "a/b", "agent": {"name": "python", "version": "6"}}}}'
    assert problems_of([odd]) == [
        "line 1 (metadata): 'service.name' may hold only letters, digits, spaces, _ and -"
    ]


async def test_the_intake_refuses_an_agent_without_the_secret_token(intake: ApmIntake) -> None:
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{intake.url}/intake/v2/events",
            data=b"",
            headers={"Content-Type": "application/x-ndjson"},
        )
    assert response.status == 401
    assert intake.rejected == ["unauthorized"]
