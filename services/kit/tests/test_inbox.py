"""Consumers on real JetStream and FerretDB: each event handled once, bounded retries, then the DLQ."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, RawStreamMsg
from pymongo.asynchronous.database import AsyncDatabase

from shopkit import broker, clock, context
from shopkit.apm import Apm
from shopkit.events import Event, EventStore, encode
from shopkit.inbox import (
    DEAD_LETTERS,
    INBOX_COLLECTION,
    RETENTION,
    Consumer,
    Handler,
    consume,
    dead_letter_subject,
    subject_matches,
)
from shopkit.keys import DB, JETSTREAM, METRICS, SETTINGS
from shopkit.metrics import Metrics
from shopkit.relay import Relay
from shopkit.settings import KitSettings, Secret, load
from shopkit.testing.apm_intake import ApmIntake


@pytest.fixture
def publisher() -> str:
    """The publishing service: a name of this test's own, so its stream meets no other test's."""
    return "p" + uuid.uuid4().hex[:12]


@pytest.fixture
def durable() -> str:
    return "c" + uuid.uuid4().hex[:12]


@pytest.fixture
async def js(nats_client: Nats, publisher: str) -> AsyncIterator[JetStreamContext]:
    jetstream = nats_client.jetstream(timeout=5)
    await broker.ensure_stream(jetstream, publisher)
    try:
        yield jetstream
    finally:
        await jetstream.delete_stream(broker.stream_name(publisher))


@pytest.fixture
async def publish(
    db: AsyncDatabase[Any], js: JetStreamContext, publisher: str
) -> Callable[[str, str], Awaitable[Event]]:
    """Publish an event the way the publisher does: append to its stream, relay it."""
    store = EventStore(db, "published_events", relayed=True)
    await store.ensure_indexes()
    relay = Relay(store, js, publisher)

    async def send(event_type: str, stream_id: str) -> Event:
        event = await store.append(stream_id, await store.head(stream_id), event_type, {"n": 1})
        await relay.run_once()
        return event

    return send


class Recorder:
    """A handler that notes every event it runs for, failing its first `failures` runs."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[str] = []
        self.failures = failures

    async def __call__(self, event: Event) -> None:
        self.calls.append(event.id)
        if len(self.calls) <= self.failures:
            raise RuntimeError(f"cannot handle {event.type} yet")


def consumer(
    js: JetStreamContext,
    db: AsyncDatabase[Any],
    publisher: str,
    durable: str,
    handler: Handler,
    subjects: list[str] | None = None,
    **options: Any,
) -> Consumer:
    return Consumer(
        js,
        db,
        durable=durable,
        stream=publisher,
        subjects=subjects or [f"shop.{publisher}.order.>"],
        handler=handler,
        service="notifications",
        retry_delay=0.01,
        fetch_timeout=0.2,
        **options,
    )


async def run_until(consumer: Consumer, done: Callable[[], bool], within: float = 10.0) -> None:
    """Drive the consumer until `done()` holds, failing the test after `within` seconds."""
    async with asyncio.timeout(within):
        while not done():
            await consumer.run_once()


async def acknowledged(js: JetStreamContext, publisher: str, durable: str) -> ConsumerInfo:
    """The consumer's state once nothing is pending or waiting for an ack."""
    async with asyncio.timeout(5):
        while True:
            info: ConsumerInfo = await js.consumer_info(broker.stream_name(publisher), durable)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return info
            await asyncio.sleep(0.02)


async def dead_letter(js: JetStreamContext, durable: str) -> RawStreamMsg:
    return await js.get_last_msg(broker.stream_name(DEAD_LETTERS), dead_letter_subject(durable))


def handled(metrics: Metrics, outcome: str) -> float | None:
    """How many order.paid events the test consumer counted with this outcome."""
    labels = {"service": "notifications", "type": "order.paid", "outcome": outcome}
    return metrics.registry.get_sample_value("events_handled_total", labels)


async def test_each_event_is_handled_once_and_acked(
    db: AsyncDatabase[Any],
    js: JetStreamContext,
    publisher: str,
    durable: str,
    publish: Callable[[str, str], Awaitable[Event]],
) -> None:
    # given five published events
    events = [await publish("order.paid", f"order-{n}") for n in range(5)]
    handler = Recorder()
    metrics = Metrics.create("notifications")

    # when the consumer runs until it has handled them
    reader = consumer(js, db, publisher, durable, handler, metrics=metrics)
    await run_until(reader, lambda: len(handler.calls) == 5)

    # then each was handled once, in order, acked, recorded done, and counted
    assert handler.calls == [event.id for event in events]
    await acknowledged(js, publisher, durable)
    assert await db[INBOX_COLLECTION].count_documents({"state": "done"}) == 5
    assert handled(metrics, "handled") == 5


async def test_the_events_waiting_behind_each_delivery_are_the_consumers_lag(
    db: AsyncDatabase[Any],
    js: JetStreamContext,
    publisher: str,
    durable: str,
    publish: Callable[[str, str], Awaitable[Event]],
) -> None:
    # given four published events, and a handler that reads the lag as each one reaches it
    for n in range(4):
        await publish("order.paid", f"order-{n}")
    metrics = Metrics.create("notifications")
    labels = {"service": "notifications", "consumer": durable}
    seen: list[float | None] = []

    async def note_lag(event: Event) -> None:
        seen.append(metrics.registry.get_sample_value("events_consumer_pending", labels))

    # when the consumer takes them one at a time
    reader = consumer(js, db, publisher, durable, note_lag, metrics=metrics, batch=1)
    await run_until(reader, lambda: len(seen) == 4)

    # then the lag counts down to nothing
    assert seen == [3, 2, 1, 0]


async def test_an_event_delivered_again_after_it_was_handled_is_not_handled_again(
    db: AsyncDatabase[Any],
    js: JetStreamContext,
    publisher: str,
    durable: str,
    publish: Callable[[str, str], Awaitable[Event]],
) -> None:
    # given an event a consumer handled and acked
    event = await publish("order.paid", "order-1")
    handler = Recorder()
    await run_until(consumer(js, db, publisher, durable, handler), lambda: bool(handler.calls))
    await acknowledged(js, publisher, durable)

    # when JetStream delivers it again (the durable is recreated and replays the stream)
    await js.delete_consumer(broker.stream_name(publisher), durable)
    replay = consumer(js, db, publisher, durable, handler)
    await replay.start()
    info = await js.consumer_info(broker.stream_name(publisher), durable)
    assert info.num_pending == 1
    await replay.run_once()

    # then the inbox skipped it: the handler ran once in all, and the redelivery was acked
    assert handler.calls == [event.id]
    await acknowledged(js, publisher, durable)


async def test_the_same_event_published_twice_is_handled_once(
    db: AsyncDatabase[Any], js: JetStreamContext, publisher: str, durable: str
) -> None:
    # given one event published twice under different message ids (as after the dedupe window)
    event = await EventStore(db).append("order-1", 0, "order.paid", {})
    for message_id in ("first", "second"):
        await js.publish(
            broker.subject(publisher, event.type),
            encode(event),
            headers={"Nats-Msg-Id": message_id},
        )
    handler = Recorder()

    # when the consumer takes both messages
    reader = consumer(js, db, publisher, durable, handler)
    await run_until(reader, lambda: bool(handler.calls))
    await acknowledged(js, publisher, durable)

    # then the handler ran once
    assert handler.calls == [event.id]


async def test_a_failing_handler_is_retried_until_it_succeeds(
    db: AsyncDatabase[Any],
    js: JetStreamContext,
    publisher: str,
    durable: str,
    publish: Callable[[str, str], Awaitable[Event]],
) -> None:
    # given a handler that fails twice before it succeeds
    event = await publish("order.paid", "order-1")
    handler = Recorder(failures=2)
    metrics = Metrics.create("notifications")

    # when the consumer runs
    reader = consumer(js, db, publisher, durable, handler, metrics=metrics)
    await run_until(reader, lambda: len(handler.calls) == 3)

    # then the third delivery succeeded, and the event is done, acked and not dead-lettered
    assert handler.calls == [event.id] * 3
    await acknowledged(js, publisher, durable)
    assert await db[INBOX_COLLECTION].find_one({"event_id": event.id}, {"state": 1, "_id": 0}) == {
        "state": "done"
    }
    assert handled(metrics, "retried") == 2


async def test_a_handler_that_always_fails_ends_in_the_dlq_after_max_deliver(
    db: AsyncDatabase[Any],
    js: JetStreamContext,
    publisher: str,
    durable: str,
    publish: Callable[[str, str], Awaitable[Event]],
) -> None:
    # given a handler that never succeeds
    event = await publish("order.paid", "order-1")
    handler = Recorder(failures=1_000)
    metrics = Metrics.create("notifications")

    # when the consumer runs with three deliveries at most
    reader = consumer(js, db, publisher, durable, handler, metrics=metrics, max_deliver=3)
    await run_until(
        reader,
        lambda: bool(
            metrics.registry.get_sample_value(
                "events_dead_lettered_total", {"service": "notifications", "type": "order.paid"}
            )
        ),
    )

    # then the handler ran three times, and the message went to shop.dlq.<durable> with the
    # original body and headers, and the error
    assert handler.calls == [event.id] * 3
    letter = await dead_letter(js, durable)
    assert letter.data == encode(event)
    headers = letter.headers or {}
    assert headers["Shop-Dlq-Msg-Id"] == event.id
    assert headers["Shop-Dlq-Subject"] == f"shop.{publisher}.order.paid"
    assert headers["Shop-Dlq-Deliveries"] == "3"
    assert headers["Shop-Dlq-Error"] == "RuntimeError: cannot handle order.paid yet"
    # and the original message is acknowledged: nothing pending, nothing redelivered later
    await acknowledged(js, publisher, durable)
    assert await reader.run_once() == 0
    assert len(handler.calls) == 3


async def test_an_event_whose_last_attempt_died_unanswered_is_dead_lettered(
    db: AsyncDatabase[Any],
    js: JetStreamContext,
    publisher: str,
    durable: str,
    publish: Callable[[str, str], Awaitable[Event]],
) -> None:
    # given a consumer allowed one attempt, whose only delivery went to an instance that died
    # before answering (fetched through the same durable and never acked)
    event = await publish("order.paid", "order-1")
    handler = Recorder()
    reader = consumer(js, db, publisher, durable, handler, max_deliver=1, ack_wait=0.3)
    await reader.start()
    crashed = await js.pull_subscribe_bind(durable=durable, stream=broker.stream_name(publisher))
    (lost,) = await crashed.fetch(1, timeout=2)
    assert lost.metadata.num_delivered == 1

    # when JetStream redelivers it after ack_wait
    async with asyncio.timeout(5):
        while not (await reader.run_once()):
            pass

    # then the spare delivery dead-letters it without running the handler again
    letter = await dead_letter(js, durable)
    assert (letter.headers or {})["Shop-Dlq-Msg-Id"] == event.id
    assert (letter.headers or {})["Shop-Dlq-Error"].startswith("AttemptsExhausted")
    assert handler.calls == []
    await acknowledged(js, publisher, durable)


async def test_a_message_that_is_not_an_event_goes_straight_to_the_dlq(
    db: AsyncDatabase[Any], js: JetStreamContext, publisher: str, durable: str
) -> None:
    # given a message whose body is not an event, with a header of its own
    await js.publish(
        f"shop.{publisher}.order.paid", b"not json", headers={"Nats-Msg-Id": "m1", "X-Trace": "t1"}
    )
    handler = Recorder()

    # when the consumer takes it
    await consumer(js, db, publisher, durable, handler).run_once()

    # then it is dead-lettered at once, keeping its headers, and the handler never ran
    letter = await dead_letter(js, durable)
    assert letter.data == b"not json"
    assert (letter.headers or {})["X-Trace"] == "t1"
    assert (letter.headers or {})["Shop-Dlq-Deliveries"] == "1"
    assert handler.calls == []
    await acknowledged(js, publisher, durable)


async def test_two_consumers_of_one_event_each_handle_it(
    db: AsyncDatabase[Any],
    js: JetStreamContext,
    publisher: str,
    publish: Callable[[str, str], Awaitable[Event]],
) -> None:
    # given two durables of one service (one inbox collection) on the same subject
    event = await publish("order.paid", "order-1")
    confirmations, statistics = Recorder(), Recorder()

    # when both run
    await run_until(
        consumer(js, db, publisher, "confirmations" + publisher, confirmations),
        lambda: bool(confirmations.calls),
    )
    await run_until(
        consumer(js, db, publisher, "statistics" + publisher, statistics),
        lambda: bool(statistics.calls),
    )

    # then each handled it: the inbox is kept per durable
    assert confirmations.calls == statistics.calls == [event.id]


async def test_only_the_subscribed_subjects_reach_the_handler(
    db: AsyncDatabase[Any],
    js: JetStreamContext,
    publisher: str,
    durable: str,
    publish: Callable[[str, str], Awaitable[Event]],
) -> None:
    # given events of three types, two of which the consumer subscribes to
    paid = await publish("order.paid", "order-1")
    await publish("order.shipped", "order-1")
    cancelled = await publish("order.cancelled", "order-2")
    handler = Recorder()
    subjects = [f"shop.{publisher}.order.paid", f"shop.{publisher}.order.cancelled"]

    # when the consumer runs until everything is acknowledged
    reader = consumer(js, db, publisher, durable, handler, subjects=subjects)
    await run_until(reader, lambda: len(handler.calls) == 2)
    await acknowledged(js, publisher, durable)

    # then only those two reached the handler (nats-server 2.9 ignores filter_subjects;
    # the consumer filters on its side too)
    assert handler.calls == [paid.id, cancelled.id]


async def test_handled_events_are_forgotten_after_the_retention_by_their_own_durable(
    db: AsyncDatabase[Any],
    js: JetStreamContext,
    publisher: str,
    durable: str,
    publish: Callable[[str, str], Awaitable[Event]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given an event that two durables handled
    await publish("order.paid", "order-1")
    first, second = Recorder(), Recorder()
    keeping = consumer(js, db, publisher, durable, first)
    forgetting = consumer(js, db, publisher, durable + "b", second)
    await run_until(keeping, lambda: bool(first.calls))
    await run_until(forgetting, lambda: bool(second.calls))
    inbox = db[INBOX_COLLECTION]
    assert await inbox.count_documents({}) == 2

    # when a day later one durable purges, and past the retention it steps (purging first)
    tomorrow = clock.now() + timedelta(days=1)
    assert await forgetting.purge(tomorrow) == 0
    later = clock.now() + RETENTION + timedelta(days=2)
    monkeypatch.setattr(clock, "now", lambda: later)
    await forgetting.step()

    # then only its own record is gone, and only once the retention has passed
    assert [doc["consumer"] async for doc in inbox.find()] == [durable]
    assert await inbox.count_documents({"purge_on": {"$exists": True}}) == 1


async def test_consume_wires_a_consumer_into_an_app_with_one_line(
    db: AsyncDatabase[Any],
    js: JetStreamContext,
    publisher: str,
    durable: str,
    mongo_url: str,
    publish: Callable[[str, str], Awaitable[Event]],
) -> None:
    # given an app whose handler reads what it needs from the app
    seen: list[tuple[str, str]] = []
    handled = asyncio.Event()

    async def welcome(app: web.Application, event: Event) -> None:
        seen.append((app[SETTINGS].service_name, event.type))
        handled.set()

    app = web.Application()
    app[SETTINGS] = KitSettings(service_name="notifications", mongo_url=Secret(mongo_url))
    app[METRICS] = Metrics.create("notifications")
    app[DB] = db
    app[JETSTREAM] = js
    app.cleanup_ctx.append(
        consume(durable, stream=publisher, subjects=[f"shop.{publisher}.user.>"], handler=welcome)
    )
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        # when the publisher publishes an event
        await publish("user.registered", "user-1")

        # then the app's consumer handles it soon
        await asyncio.wait_for(handled.wait(), timeout=5)
        assert seen == [("notifications", "user.registered")]
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("shop.users.user.registered", "shop.users.user.registered", True),
        ("shop.users.user.registered", "shop.users.user.deleted", False),
        ("shop.users.*.registered", "shop.users.user.registered", True),
        ("shop.users.>", "shop.users.user.registered", True),
        ("shop.users.>", "shop.users", False),
        ("shop.users.user", "shop.users.user.registered", False),
    ],
)
def test_subjects_match_like_nats(pattern: str, subject: str, matches: bool) -> None:
    assert subject_matches(pattern, subject) is matches


async def test_each_delivery_is_an_apm_transaction_in_the_publishing_requests_trace(
    db: AsyncDatabase[Any],
    js: JetStreamContext,
    publisher: str,
    durable: str,
    publish: Callable[[str, str], Awaitable[Event]],
) -> None:
    # given an event appended while serving a request of a caller's trace
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with context.scope(caller) as request_span:
        event = await publish("order.paid", "order-1")
    async with ApmIntake() as intake:
        settings = load(
            KitSettings,
            {
                "SERVICE_NAME": "notifications",
                "MONGO_URL": "unused",
                "ELASTIC_APM_SERVER_URL": intake.url,
            },
        )
        recorder = Apm.start(settings)
        handler = Recorder(failures=1)

        # when a consumer sending to APM fails its first delivery and handles the second
        reader = consumer(js, db, publisher, durable, handler, apm=recorder)
        await run_until(reader, lambda: len(handler.calls) == 2)
        await acknowledged(js, publisher, durable)
        await recorder.close()

    # then each delivery is a transaction of the request's trace, whose parent is the request's
    # span, named for the consumer and the event type, with the delivery's outcome as result
    assert event.traceparent == request_span.traceparent
    assert intake.rejected == []
    transactions = intake.events("transaction")
    assert [(t["trace_id"], t["parent_id"]) for t in transactions] == [
        (request_span.trace_id, request_span.span_id)
    ] * 2
    assert {t["name"] for t in transactions} == {f"{durable} order.paid"}
    assert {t["type"] for t in transactions} == {"messaging"}
    assert [(t["result"], t["outcome"]) for t in transactions] == [
        ("retried", "failure"),
        ("handled", "success"),
    ]
    # and each has an id of its own: the span the handler's log lines carry
    assert len({t["id"] for t in transactions}) == 2
