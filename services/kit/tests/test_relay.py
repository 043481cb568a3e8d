"""The outbox relay on real FerretDB and JetStream: each event published once, whatever stops it."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from aiohttp import web
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from shopkit import broker, mongo
from shopkit.events import Event, EventStore
from shopkit.keys import DB, JETSTREAM, METRICS, SETTINGS
from shopkit.metrics import Metrics
from shopkit.relay import LEASES_COLLECTION, Lease, Relay, relay_ctx
from shopkit.settings import KitSettings, Secret
from shopkit.testing.explain import ExplainedMongo

T = TypeVar("T")


@pytest.fixture
def service() -> str:
    """A service name of this test's own, so its JetStream stream meets no other test's."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
async def js(nats_client: Nats, service: str) -> AsyncIterator[JetStreamContext]:
    jetstream = nats_client.jetstream(timeout=5)
    await broker.ensure_stream(jetstream, service)
    try:
        yield jetstream
    finally:
        await jetstream.delete_stream(broker.stream_name(service))


@pytest.fixture
async def store(db: AsyncDatabase[Any]) -> EventStore:
    events = EventStore(db)
    await events.ensure_indexes()
    return events


async def stream_messages(js: JetStreamContext, service: str) -> list[RawStreamMsg]:
    """Every message JetStream holds in the service's stream, read back one by one."""
    name = broker.stream_name(service)
    state = (await js.stream_info(name)).state
    if state.messages == 0:
        return []
    return [await js.get_msg(name, seq) for seq in range(state.first_seq, state.last_seq + 1)]


def message_ids(messages: list[RawStreamMsg]) -> Counter[str]:
    return Counter((message.headers or {})["Nats-Msg-Id"] for message in messages)


async def append_many(store: EventStore, count: int, streams: int = 10) -> list[str]:
    ids = []
    for n in range(count):
        event = await store.append(f"order-{n % streams}", n // streams, "order.noted", {"n": n})
        ids.append(event.id)
    return ids


async def eventually(probe: Callable[[], Awaitable[T]], within: float = 5.0) -> T:
    """Poll `probe` until it gives something truthy, failing the test after `within` seconds."""
    async with asyncio.timeout(within):
        while not (found := await probe()):
            await asyncio.sleep(0.02)
        return found


async def kill(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel each task once and wait until all have ended.

    Once only: on Python 3.11, a cancel that lands while `asyncio.wait_for` is cancelling its inner
    task leaves that task running, and PyMongo's pool waits for a connection that way; the orphan
    then takes the pool's lock for good and every later query of the client hangs (CPython
    gh-86296, fixed in 3.12). A cancel `wait_for` swallowed instead is caught by the loop that
    relays (see `relay_forever`)."""
    for task in tasks:
        task.cancel()
    _, running = await asyncio.wait(tasks, timeout=30)
    assert not running, "a relay ignored its cancellation"
    for task in tasks:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error


async def drain(relay: Relay) -> None:
    while await relay.run_once():
        pass


def lease(db: AsyncDatabase[Any], holder: str, ttl: float = 10.0) -> Lease:
    return Lease(db[LEASES_COLLECTION], "relay.events", holder, ttl)


async def test_the_relay_publishes_each_event_once_on_its_subject(
    store: EventStore, js: JetStreamContext, service: str
) -> None:
    # given 30 events across a few streams
    ids = await append_many(store, 30, streams=3)
    metrics = Metrics.create(service)

    # when the relay runs until nothing is left
    await drain(Relay(store, js, service, metrics=metrics, batch=7))

    # then JetStream holds each event exactly once, on shop.<service>.<type>, with its fields
    messages = await stream_messages(js, service)
    assert message_ids(messages) == Counter(ids)
    assert {message.subject for message in messages} == {f"shop.{service}.order.noted"}
    body = json.loads(messages[0].data or b"")
    assert set(body) == {"id", "type", "stream_id", "seq", "occurred_at", "data"}
    assert body["id"] == (messages[0].headers or {})["Nats-Msg-Id"]
    # and every event is marked published, and counted
    assert await store.unpublished(limit=100) == []
    published = metrics.registry.get_sample_value(
        "events_published_total", {"service": service, "type": "order.noted"}
    )
    assert published == 30


async def test_events_whose_publication_was_not_recorded_are_not_doubled(
    store: EventStore, js: JetStreamContext, service: str
) -> None:
    # given events the relay published, half of which were still queued when it stopped (a crash
    # after the acks and before the dequeue)
    ids = await append_many(store, 40)
    queued = await store.outbox.find().to_list()
    await drain(Relay(store, js, service))
    await store.outbox.insert_many(queued[::2])

    # when a relay runs again
    metrics = Metrics.create(service)
    await drain(Relay(store, js, service, metrics=metrics))

    # then JetStream still holds each event once, and the resent copies were not counted
    assert message_ids(await stream_messages(js, service)) == Counter(ids)
    assert await store.unpublished(limit=100) == []
    assert metrics.registry.get_sample_value(
        "events_published_total", {"service": service, "type": "order.noted"}
    ) in (None, 0)


async def test_killing_relays_at_random_points_loses_and_doubles_no_event(
    store: EventStore, js: JetStreamContext, service: str
) -> None:
    # given 500 unpublished events
    ids = await append_many(store, 500, streams=50)
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    metrics = Metrics.create(service)

    async def relay_forever() -> None:
        relay = Relay(store, js, service, metrics=metrics, batch=rng.choice([10, 50, 100]))
        this = asyncio.current_task()
        # Checked after each pass: a cancel Python 3.11's wait_for swallowed (gh-86296) must still
        # end the relay, since `kill` cancels only once.
        while this is not None and not this.cancelling():
            await relay.run_once()
        raise asyncio.CancelledError

    # when two relays at a time (no lease: the worst overlap) are killed at random moments,
    # and fresh ones started, until no event is left queued
    kills = 0
    async with asyncio.timeout(90):
        while await store.unpublished(limit=1):
            relays = [asyncio.create_task(relay_forever()) for _ in range(2)]
            try:
                # Short lives: the relay drains hundreds of events a second, so a kill must come
                # soon.
                await asyncio.sleep(rng.uniform(0.005, 0.06))
            finally:
                # Whatever ends the wait (the timeout too): no relay may outlive the test.
                await kill(relays)
            kills += 1

    # then JetStream holds every event exactly once
    held = message_ids(await stream_messages(js, service))
    assert held == Counter(ids), f"seed {seed}, {kills} kills"
    assert kills > 1, "the relays were never interrupted"
    # and no event was counted twice (one whose ack a kill cut off is not counted at all)
    published = metrics.registry.get_sample_value(
        "events_published_total", {"service": service, "type": "order.noted"}
    )
    assert published is not None
    assert published <= 500


async def test_two_relays_at_once_publish_each_event_exactly_once(
    store: EventStore, js: JetStreamContext, service: str
) -> None:
    # given 100 unpublished events
    ids = await append_many(store, 100)

    # when two relays without a lease run side by side until all are published
    await asyncio.gather(
        drain(Relay(store, js, service, batch=20)), drain(Relay(store, js, service, batch=20))
    )

    # then their overlap cost work only: each event is in JetStream once
    assert message_ids(await stream_messages(js, service)) == Counter(ids)


async def test_only_the_lease_holder_relays(
    db: AsyncDatabase[Any], store: EventStore, js: JetStreamContext, service: str
) -> None:
    # given a relay that holds the lease
    leader = Relay(store, js, service, lease=lease(db, "a"))
    standby = Relay(store, js, service, lease=lease(db, "b"))
    await leader.run_once()

    # when events are appended and the standby runs
    ids = await append_many(store, 5)
    standby_published = await standby.run_once()

    # then the standby published nothing, and the leader publishes them all
    assert standby_published == 0
    assert await leader.run_once() == 5
    assert message_ids(await stream_messages(js, service)) == Counter(ids)


async def test_a_standby_relay_takes_over_an_expired_lease(
    db: AsyncDatabase[Any], store: EventStore, js: JetStreamContext, service: str
) -> None:
    # given a leader with a short lease that then stops (killed, so it never releases it)
    leader = Relay(store, js, service, lease=lease(db, "a", ttl=0.3))
    await leader.run_once()
    ids = await append_many(store, 5)
    standby = Relay(store, js, service, lease=lease(db, "b", ttl=0.3))

    # when the standby keeps trying
    published = 0
    async with asyncio.timeout(5):
        while not published:
            published = await standby.run_once()

    # then it took over once the lease expired, and the old leader now stands by
    assert published == 5
    assert message_ids(await stream_messages(js, service)) == Counter(ids)
    assert await leader.run_once() == 0
    assert await db[LEASES_COLLECTION].count_documents({}) == 1


async def test_a_released_lease_is_taken_over_at_once(
    db: AsyncDatabase[Any], store: EventStore, js: JetStreamContext, service: str
) -> None:
    # given a leader with a long lease that shuts down cleanly
    leader = Relay(store, js, service, lease=lease(db, "a", ttl=60))
    await leader.run_once()
    await leader.close()

    # when events are appended and the standby runs
    await append_many(store, 3)

    # then the standby relays them without waiting for the lease to expire
    assert await Relay(store, js, service, lease=lease(db, "b", ttl=60)).run_once() == 3


async def test_outbox_lag_is_the_age_of_the_oldest_queued_event(
    db: AsyncDatabase[Any], store: EventStore, js: JetStreamContext, service: str
) -> None:
    # given a leader, and a standby that reports metrics
    leader = Relay(store, js, service, lease=lease(db, "a"))
    await leader.run_once()
    metrics = Metrics.create(service)
    standby = Relay(store, js, service, lease=lease(db, "b"), metrics=metrics)
    before = await store.append("order-1", 0, "order.placed", {})
    await store.append("order-2", 0, "order.placed", {})

    # when the standby measures while the events wait
    await standby.run_once()
    oldest_age = (datetime.now(UTC) - before.occurred_at).total_seconds()
    waiting_lag = metrics.registry.get_sample_value("outbox_lag_seconds", {"service": service})

    # then the lag is the oldest queued event's age, and drops to zero once the leader published
    assert waiting_lag is not None
    assert waiting_lag > 0
    assert waiting_lag <= oldest_age
    await leader.run_once()
    await standby.run_once()
    assert metrics.registry.get_sample_value("outbox_lag_seconds", {"service": service}) == 0


async def test_before_publish_runs_before_each_event_is_published(
    store: EventStore, js: JetStreamContext, service: str
) -> None:
    # given a hook that notes how many messages JetStream held when it ran
    seen: list[tuple[int, int]] = []

    async def repair(event: Event) -> None:
        held = (await js.stream_info(broker.stream_name(service))).state.messages
        seen.append((event.seq, held))

    await append_many(store, 3, streams=1)

    # when the relay runs
    await Relay(store, js, service, before_publish=repair).run_once()

    # then the hook ran for each event before that event was published
    assert seen == [(1, 0), (2, 1), (3, 2)]


async def test_a_failing_before_publish_holds_back_only_its_stream(
    store: EventStore, js: JetStreamContext, service: str
) -> None:
    # given two streams, the first event of one of which the hook cannot handle yet
    async def repair(event: Event) -> None:
        if event.stream_id == "order-bad" and event.seq == 1:
            raise RuntimeError("projection unavailable")

    good = [await store.append("order-good", seq, "order.noted", {}) for seq in range(2)]
    bad = [await store.append("order-bad", seq, "order.noted", {}) for seq in range(2)]

    # when the relay runs
    published = await Relay(store, js, service, before_publish=repair).run_once()

    # then the other stream went out, and the failing stream waits whole, in order
    assert published == 2
    assert message_ids(await stream_messages(js, service)) == Counter(e.id for e in good)
    assert [event.id for event in await store.unpublished(limit=10)] == [e.id for e in bad]


async def test_relay_ctx_relays_while_the_app_runs_and_releases_its_lease(
    db: AsyncDatabase[Any], store: EventStore, js: JetStreamContext, service: str, mongo_url: str
) -> None:
    # given an app wired with one line
    app = web.Application()
    app[SETTINGS] = KitSettings(service_name=service, mongo_url=Secret(mongo_url))
    app[METRICS] = Metrics.create(service)
    app[DB] = db
    app[JETSTREAM] = js
    app.cleanup_ctx.append(relay_ctx(interval=0.05))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        # when an event is appended
        event = await store.append("order-1", 0, "order.placed", {})

        # then it reaches JetStream soon
        messages = await eventually(lambda: stream_messages(js, service))
        assert message_ids(messages) == Counter([event.id])
    finally:
        await runner.cleanup()
    # and stopping the app gave the lease back
    assert await db[LEASES_COLLECTION].count_documents({}) == 0


class OutboxQueries(monitoring.CommandListener):
    """Records each query the client sends to the outbox, and how many documents it returned."""

    def __init__(self) -> None:
        self.finds: list[dict[str, Any]] = []
        self.deletes: list[dict[str, Any]] = []
        self.returned = 0
        self._reads: set[int] = set()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        if event.command_name == "find" and command["find"] == "events_outbox":
            self.finds.append({key: command.get(key) for key in ("filter", "sort", "limit")})
            self._reads.add(event.request_id)
        elif event.command_name == "getMore" and command["collection"] == "events_outbox":
            self._reads.add(event.request_id)
        elif event.command_name == "delete" and command["delete"] == "events_outbox":
            self.deletes += [statement["q"] for statement in command["deletes"]]

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.request_id in self._reads:
            cursor = event.reply["cursor"]
            self.returned += len(cursor.get("firstBatch", cursor.get("nextBatch", [])))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def reset(self) -> None:
        self.finds, self.deletes, self.returned = [], [], 0


@pytest.fixture
async def watched(
    mongo_url: str, database_name: str, db: AsyncDatabase[Any]
) -> AsyncIterator[tuple[EventStore, OutboxQueries]]:
    """The test's event store through a client that records the queries sent to the outbox."""
    queries = OutboxQueries()
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        mongo_url, tz_aware=True, event_listeners=[queries]
    )
    try:
        yield EventStore(client[database_name]), queries
    finally:
        await client.close()


async def test_a_batch_reads_only_what_it_publishes_whatever_the_backlog(
    watched: tuple[EventStore, OutboxQueries], js: JetStreamContext, service: str
) -> None:
    # given a backlog of 1,000 queued events in 10 streams, as a broker outage leaves it
    store, queries = watched
    ids = await append_many(store, 1000, streams=10)
    relay = Relay(store, js, service, batch=20)
    await relay.run_once()

    # when the relay publishes its next batch
    queries.reset()
    published = await relay.run_once()

    # then it read the batch and nothing more, each query one FerretDB pushes down: unfiltered
    # with a limit (LIMIT in SQL), or by `_id`; never sorted, never `$in`
    assert published == 20
    assert queries.returned == 20
    for query in queries.finds:
        assert query["sort"] is None
        assert query["filter"] == {} or set(query["filter"]) == {"_id"}, query
        assert query["filter"] or query["limit"] == 20
        assert all(not isinstance(value, dict) for value in query["filter"].values()), query
    # and it dequeued them one `_id` at a time, in one round trip
    assert len(queries.deletes) == 20
    assert all(
        set(delete) == {"_id"} and isinstance(delete["_id"], str) for delete in queries.deletes
    )
    assert message_ids(await stream_messages(js, service)) == Counter(ids[:40])


async def test_the_relay_reads_the_outbox_by_primary_key_or_with_a_limit(
    explained_mongo: ExplainedMongo, database_name: str, js: JetStreamContext, service: str
) -> None:
    # given a backlog on a database whose every full scan is reported
    client = mongo.client(explained_mongo.url)
    try:
        store = EventStore(client[database_name])
        await store.ensure_indexes()
        await append_many(store, 300, streams=10)
        queued = len(explained_mongo.scans(database_name))

        # when a relay that has not published yet (so it checks predecessors) runs a few batches
        relay = Relay(store, js, service, batch=20)
        published = [await relay.run_once() for _ in range(3)]

        # then PostgreSQL served its outbox lookups and dequeues from an index, and read the
        # outbox whole only under a LIMIT (the batch)
        assert published == [20, 20, 20]
        outbox = [
            scan
            for scan in explained_mongo.scans(database_name)[queued:]
            if scan.collection == "events_outbox"
        ]
        assert [scan for scan in outbox if scan.filtered or "LIMIT" not in scan.query] == []
    finally:
        await client.close()


async def test_a_stream_stored_out_of_order_in_the_outbox_still_goes_out_in_order(
    store: EventStore, js: JetStreamContext, service: str
) -> None:
    # given a stream of 30 queued events whose later messages the outbox stores first (as it
    # may once it reuses the space of deleted ones), more of them than one batch holds
    ids = await append_many(store, 30, streams=1)
    queued = await store.outbox.find().to_list()
    await store.outbox.delete_many({})
    await store.outbox.insert_many(queued[::-1])

    # when the relay runs with batches of 10
    await drain(Relay(store, js, service, batch=10))

    # then the stream went out whole, in seq order
    messages = await stream_messages(js, service)
    assert [(message.headers or {})["Nats-Msg-Id"] for message in messages] == ids


async def test_a_message_queued_in_the_former_layout_is_published_once_and_dequeued(
    store: EventStore, js: JetStreamContext, service: str
) -> None:
    # given a message queued by the version that keyed the outbox by event id, not by slot
    event = await store.append("order-1", 0, "order.placed", {}, publish=False)
    await store.outbox.insert_one(
        {
            "_id": event.id,
            "slot": f"order-1:{1:012d}",
            "id": event.id,
            "stream_id": event.stream_id,
            "seq": event.seq,
            "type": event.type,
            "data": event.data,
            "occurred_at": event.occurred_at,
        }
    )

    # when the relay runs twice
    relay = Relay(store, js, service)
    passes = [await relay.run_once() for _ in range(2)]

    # then the event went out in the first pass only, and the outbox is empty
    assert passes == [1, 0]
    assert message_ids(await stream_messages(js, service)) == Counter([event.id])
    assert await store.outbox.count_documents({}) == 0


class CrashingEvents:
    """An events collection whose inserts never happen: the process died just before them."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def insert_one(self, document: dict[str, Any]) -> None:
        raise ConnectionError("the appender died before inserting its event")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class CrashAfterInsert(EventStore):
    """A real store whose appends die right after inserting the event, before queueing it."""

    async def _queue(self, event: Event) -> None:
        raise ConnectionError("the appender died before queueing its event")


async def test_an_append_that_died_before_its_event_publishes_nothing_and_is_cleaned_up(
    db: AsyncDatabase[Any], store: EventStore, js: JetStreamContext, service: str
) -> None:
    # given an append that wrote its intent and died before inserting its event
    crashing = EventStore(db)
    crashing.collection = CrashingEvents(crashing.collection)  # type: ignore[assignment]
    with pytest.raises(ConnectionError):
        await crashing.append("order-1", 0, "order.placed", {}, event_id="ghost")
    (intent,) = await store.pending_intents()
    relay = Relay(store, js, service, grace=0.3)

    # when the relay runs within the grace period
    published = await relay.run_once()

    # then it waits: nothing published, the intent kept (the insert might still land)
    assert published == 0
    assert await store.pending_intents() == [intent]

    # and once the grace period is over, the intent is dropped and still nothing is published
    await asyncio.sleep(0.35)
    assert await relay.run_once() == 0
    assert await store.pending_intents() == []
    assert await stream_messages(js, service) == []
    assert await store.head("order-1") == 0


async def test_an_append_that_died_after_its_event_is_published_after_the_grace_period(
    db: AsyncDatabase[Any], store: EventStore, js: JetStreamContext, service: str
) -> None:
    # given an append that inserted its event and died before queueing it, then a later event
    # of the same stream appended normally
    crashing = CrashAfterInsert(db)
    with pytest.raises(ConnectionError):
        await crashing.append("order-1", 0, "order.placed", {})
    (first,) = await store.load("order-1")
    second = await store.append("order-1", 1, "order.paid", {})
    relay = Relay(store, js, service, grace=0.3)

    # when the relay runs within the grace period
    published = await relay.run_once()

    # then the stream waits whole: its later event must not overtake the first
    assert published == 0
    assert await stream_messages(js, service) == []

    # and once the grace period is over, both go out once, in order
    await asyncio.sleep(0.35)
    await drain(relay)
    await drain(relay)
    messages = await stream_messages(js, service)
    assert [(message.headers or {})["Nats-Msg-Id"] for message in messages] == [
        first.id,
        second.id,
    ]
    assert await store.pending_intents() == []


class PausedStore(EventStore):
    """A real store whose appends of one event id wait, after the event's insert, to be let go."""

    def __init__(self, db: AsyncDatabase[Any], paused_id: str) -> None:
        super().__init__(db)
        self.paused_id = paused_id
        self.inserted = asyncio.Event()
        self.go_on = asyncio.Event()

    async def _queue(self, event: Event) -> None:
        if event.id == self.paused_id:
            self.inserted.set()
            await self.go_on.wait()
        await super()._queue(event)


async def test_a_later_event_waits_for_an_earlier_one_still_being_appended(
    db: AsyncDatabase[Any], store: EventStore, js: JetStreamContext, service: str
) -> None:
    # given an append at seq 1 paused between its event's insert and its queueing, and an
    # append at seq 2 that completed meanwhile
    slow = PausedStore(db, paused_id="order-1:placed")
    first_append = asyncio.create_task(
        slow.append("order-1", 0, "order.placed", {}, event_id="order-1:placed")
    )
    await slow.inserted.wait()
    second = await store.append("order-1", 1, "order.paid", {})
    other = await store.append("order-2", 0, "order.placed", {})
    relay = Relay(store, js, service)

    # when the relay runs
    published = await relay.run_once()

    # then only the other stream went out
    assert published == 1
    assert message_ids(await stream_messages(js, service)) == Counter([other.id])

    # and once the first append completes, the stream follows in order
    slow.go_on.set()
    first = await first_append
    await drain(relay)
    messages = await stream_messages(js, service)
    assert [(message.headers or {})["Nats-Msg-Id"] for message in messages] == [
        other.id,
        first.id,
        second.id,
    ]
