"""W3C Trace Context across the kit: parsed by the app, passed on by the HTTP client and with
events through the outbox and JetStream (log lines: test_logs.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from joserfc.jwk import KeySet
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext
from pymongo.asynchronous.database import AsyncDatabase

from shopkit import broker, context, traces
from shopkit.app import build_app
from shopkit.auth import StaticKeys, public
from shopkit.events import Event, EventStore
from shopkit.http import ServiceClient
from shopkit.inbox import Consumer
from shopkit.keys import HTTP
from shopkit.relay import Relay
from shopkit.settings import KitSettings, load

Serve = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


# --- the header


def test_a_valid_traceparent_names_its_trace_parent_and_flags() -> None:
    assert traces.parse(TRACEPARENT) == traces.Span(TRACE_ID, PARENT_ID, "01")
    assert traces.parse(f"00-{TRACE_ID}-{PARENT_ID}-00") == traces.Span(TRACE_ID, PARENT_ID, "00")


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"00-{'0' * 32}-{PARENT_ID}-01",  # the all-zero trace id is invalid
        f"00-{TRACE_ID}-{'0' * 16}-01",  # so is the all-zero parent id
        f"ff-{TRACE_ID}-{PARENT_ID}-01",  # version ff is forbidden
        f"00-{TRACE_ID.upper()}-{PARENT_ID}-01",  # hex is lowercase only
        f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01",  # a trace id is 32 digits
        f"00-{TRACE_ID}-{PARENT_ID}0-01",  # a parent id is 16
        f"00-{TRACE_ID}-{PARENT_ID}-1",  # flags are 2
        f"00-{TRACE_ID}-{PARENT_ID}-01-extra",  # version 00 has exactly four fields
        f"00_{TRACE_ID}_{PARENT_ID}_01",
    ],
)
def test_an_invalid_traceparent_is_ignored(header: str) -> None:
    assert traces.parse(header) is None


def test_a_later_version_is_read_for_the_fields_this_one_knows() -> None:
    # Flags beyond `sampled` are undefined in version 00 and passed on as zero.
    assert traces.parse(f"01-{TRACE_ID}-{PARENT_ID}-03-more") == traces.Span(
        TRACE_ID, PARENT_ID, "01"
    )


def test_a_child_span_keeps_the_trace_and_flags_with_an_id_of_its_own() -> None:
    parent = traces.Span(TRACE_ID, PARENT_ID, "00")
    child = parent.child()
    assert (child.trace_id, child.flags) == (TRACE_ID, "00")
    assert child.span_id != PARENT_ID
    assert traces.parse(child.traceparent) == child


def test_a_new_trace_writes_a_valid_sampled_traceparent() -> None:
    started = traces.Span.start()
    assert traces.parse(started.traceparent) == started
    assert started.flags == "01"
    assert traces.Span.start().trace_id != started.trace_id


# --- requests and calls


def traced_app(service_env: dict[str, str], upstream: str = "") -> web.Application:
    """A service whose /work answers its own trace ids and, given an upstream, calls it."""
    settings = load(KitSettings, {**service_env, "SERVICE_NAME": "t"})
    app = build_app(settings, keys=lambda _: StaticKeys(lambda: KeySet([])), events=False)

    @public
    async def work(request: web.Request) -> web.Response:
        span = context.span.get()
        assert span is not None
        answer: dict[str, Any] = {"trace_id": span.trace_id, "span_id": span.span_id}
        if upstream:
            called = ServiceClient(request.app[HTTP], "upstream", upstream)
            answer["upstream"] = (await called.request("GET", "/work")).body
        return web.json_response(answer)

    app.router.add_get("/work", work)
    return app


async def test_a_request_continues_the_callers_trace_in_a_span_of_its_own(
    serve: Serve, service_env: dict[str, str]
) -> None:
    client = await serve(traced_app(service_env))
    # when a caller sends its traceparent
    response = await client.get("/work", headers={"traceparent": TRACEPARENT})
    # then the request is a new span of that trace, and says so in its answer
    body = await response.json()
    assert body["trace_id"] == TRACE_ID
    assert body["span_id"] != PARENT_ID
    assert response.headers["traceresponse"] == f"00-{TRACE_ID}-{body['span_id']}-01"


async def test_a_request_without_a_valid_traceparent_starts_a_trace(
    serve: Serve, service_env: dict[str, str]
) -> None:
    client = await serve(traced_app(service_env))
    first = await (await client.get("/work")).json()
    invalid = f"00-{'0' * 32}-{PARENT_ID}-01"
    second = await (await client.get("/work", headers={"traceparent": invalid})).json()
    assert len({first["trace_id"], second["trace_id"], "0" * 32}) == 3


async def test_a_call_to_another_service_carries_the_trace_with_the_callers_span_as_parent(
    serve: Serve, service_env: dict[str, str]
) -> None:
    # given a service that calls another
    upstream = await serve(traced_app(service_env))
    caller = await serve(traced_app(service_env, str(upstream.make_url(""))))
    # when a request reaches the first
    body = await (await caller.get("/work", headers={"traceparent": TRACEPARENT})).json()
    # then the second worked in the same trace, in a span of its own
    assert body["upstream"]["trace_id"] == TRACE_ID
    assert body["upstream"]["span_id"] not in {body["span_id"], PARENT_ID}


async def test_the_client_sends_the_current_span_as_the_parent(serve: Serve) -> None:
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("traceparent", ""))
        return web.json_response({})

    upstream = web.Application()
    upstream.router.add_get("/thing", record)
    server = await serve(upstream)
    async with aiohttp.ClientSession() as session:
        client = ServiceClient(session, "upstream", str(server.make_url("")))
        with context.scope(TRACEPARENT) as span:
            await client.request("GET", "/thing")
        # outside any request or event (a background job), none is invented
        await client.request("GET", "/thing")
    assert seen == [span.traceparent, ""]


# --- events


@pytest.fixture
def publisher() -> str:
    return "p" + uuid.uuid4().hex[:12]


@pytest.fixture
async def js(nats_client: Nats, publisher: str) -> AsyncIterator[JetStreamContext]:
    jetstream = nats_client.jetstream(timeout=5)
    await broker.ensure_stream(jetstream, publisher)
    try:
        yield jetstream
    finally:
        await jetstream.delete_stream(broker.stream_name(publisher))


class Witness:
    """A handler noting the span and event id it ran in."""

    def __init__(self) -> None:
        self.seen: list[tuple[traces.Span | None, str | None]] = []

    async def __call__(self, event: Event) -> None:
        self.seen.append((context.span.get(), context.event_id.get()))


async def handled(
    js: JetStreamContext, db: AsyncDatabase[Any], publisher: str, count: int
) -> list[tuple[traces.Span | None, str | None]]:
    witness = Witness()
    consumer = Consumer(
        js,
        db,
        durable="c" + uuid.uuid4().hex[:12],
        stream=publisher,
        subjects=[f"shop.{publisher}.>"],
        handler=witness,
        fetch_timeout=0.2,
    )
    async with asyncio.timeout(10):
        while len(witness.seen) < count:
            await consumer.run_once()
    await consumer.stop()
    return witness.seen


async def test_an_event_carries_the_trace_of_the_request_that_appended_it_to_its_consumers(
    db: AsyncDatabase[Any], js: JetStreamContext, publisher: str
) -> None:
    # given an event appended while a request was served
    store = EventStore(db)
    await store.ensure_indexes()
    with context.scope(TRACEPARENT) as request_span:
        event = await store.append("order-1", 0, "order.placed", {"n": 1})
    # when the relay publishes it and a consumer handles it
    await Relay(store, js, publisher).run_once()
    ((span, event_id),) = await handled(js, db, publisher, 1)
    # then the handler worked in that trace, as a child of the request's span, naming the event
    assert span is not None
    assert (span.trace_id, event_id) == (TRACE_ID, event.id)
    assert span.span_id != request_span.span_id
    message = await js.get_last_msg(broker.stream_name(publisher), f"shop.{publisher}.>")
    assert (message.headers or {})["traceparent"] == request_span.traceparent


async def test_an_event_stored_before_traces_were_kept_is_published_and_starts_a_trace(
    db: AsyncDatabase[Any], js: JetStreamContext, publisher: str
) -> None:
    # given a queued event as an earlier version stored it: no traceparent field
    store = EventStore(db)
    await store.ensure_indexes()
    event = await store.append("order-1", 0, "order.placed", {"n": 1})
    assert event.traceparent is None
    assert "traceparent" not in await db["events_outbox"].find_one({"id": event.id})
    # when it is relayed and handled
    await Relay(store, js, publisher).run_once()
    ((span, event_id),) = await handled(js, db, publisher, 1)
    # then its handler has a trace of its own
    assert span is not None
    assert event_id == event.id
