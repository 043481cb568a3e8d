"""The outbox relay: publishes queued events to JetStream, then dequeues them."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from shopkit import broker, clock, context
from shopkit.events import DEFAULT_COLLECTION, Event, EventStore, Intent, encode
from shopkit.headers import TRACEPARENT
from shopkit.keys import DB, JETSTREAM, METRICS, SETTINGS
from shopkit.metrics import Metrics
from shopkit.tasks import background

if TYPE_CHECKING:
    from nats.js import JetStreamContext

__all__ = ["LEASES_COLLECTION", "Lease", "Relay", "relay_ctx"]

log = logging.getLogger("shopkit.relay")
Hook = Callable[[Event], Awaitable[None]]
LEASES_COLLECTION = "leases"
# How many streams the relay remembers its last published seq of, sparing the read that checks an
# event's predecessor is out: enough for every stream a long backlog interleaves.
REMEMBERED_STREAMS = 10_000


def holder_id() -> str:
    """Who holds a lease: readable in the database, unique per process start."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class Lease:
    """Insert-first leadership over one name, so one relay works in steady state.

    FerretDB has no atomic compare-and-set, so a lost race may leave two holders for a moment;
    the relay is idempotent, so that overlap costs work, never correctness.
    """

    def __init__(
        self, collection: AsyncCollection[Any], name: str, holder: str, ttl: float = 10.0
    ) -> None:
        self._collection = collection
        self._name = name
        self._holder = holder
        self._ttl = timedelta(seconds=ttl)

    async def acquire(self) -> bool:
        """Take the lease if free or expired, renew it if ours; False while another holds it."""
        now = clock.now()
        current = await self._collection.find_one({"_id": self._name})
        if current is None:
            return await self._insert()
        expires_at = current["expires_at"].replace(tzinfo=now.tzinfo)
        if expires_at > now:
            if current["holder"] != self._holder:
                return False
            # Renew early and only while unexpired: nobody may take over a live lease, so this
            # read-modify-write cannot overwrite a successor's lease.
            if expires_at - now < self._ttl / 2:
                await self._collection.update_one(
                    {"_id": self._name, "token": current["token"]},
                    {"$set": {"expires_at": now + self._ttl}},
                )
            return True
        # Expired: delete exactly that lease (by its token), then race the others to insert.
        await self._collection.delete_one({"_id": self._name, "token": current["token"]})
        return await self._insert()

    async def release(self) -> None:
        """Let another instance take over now rather than after the lease expires."""
        await self._collection.delete_one({"_id": self._name, "holder": self._holder})

    async def _insert(self) -> bool:
        lease = {
            "_id": self._name,
            "holder": self._holder,
            "token": uuid.uuid4().hex,
            "expires_at": clock.now() + self._ttl,
        }
        try:
            await self._collection.insert_one(lease)
        except DuplicateKeyError:
            return False
        return True


class Relay:
    """Publishes a service's queued events with `Nats-Msg-Id` = event id, so JetStream drops
    the copies an interrupted or overlapping relay sends again.

    It reads only the store's outbox and intents, never the events collection, except to recover
    an append interrupted by a crash; and the outbox only in ways FerretDB pushes down (a batch
    with a limit and neither filter nor sort, single messages by `_id`), so a batch costs the
    same however long the broker left the outbox to grow. A stream's events go out in seq
    order: an event waits while an earlier one of its stream is not queued yet (its append is
    under way) or cannot be published (its hook fails).
    """

    def __init__(
        self,
        store: EventStore,
        js: JetStreamContext,
        service: str,
        *,
        lease: Lease | None = None,
        metrics: Metrics | None = None,
        before_publish: Hook | None = None,
        batch: int = 100,
        publish_timeout: float = 5.0,
        grace: float = 30.0,
    ) -> None:
        self._store = store
        self._js = js
        self._service = service
        self._lease = lease
        self._metrics = metrics
        self._before_publish = before_publish
        self._batch = batch
        self._publish_timeout = publish_timeout
        # How long an append may take between its intent and its last insert before the relay
        # takes it for interrupted; far above any append's duration, so it recovers only crashes.
        self._grace = timedelta(seconds=grace)
        # Stream -> the highest seq this relay published, least recently published first.
        self._published: OrderedDict[str, int] = OrderedDict()

    async def run_once(self) -> int:
        """Publish a batch of queued events, each stream's in seq order; how many (none while
        another relay leads)."""
        if self._lease is not None and not await self._lease.acquire():
            # Still measure: the gauge must not go stale on the instances that stand by.
            self._report_lag(await self._store.oldest_pending(self._batch))
            return 0
        # Messages first, intents after: an event whose message missed this read while a later
        # one of its stream made it is either still an intent now, or queued (read below).
        batch = await self._store.unpublished(self._batch)
        intents = await self._store.pending_intents()
        moments = [event.occurred_at for event in batch] + [intent.at for intent in intents[:1]]
        self._report_lag(min(moments, default=None))
        appending = await self._recover_interrupted(intents)
        if not batch:
            return 0
        # Per stream, the highest seq that may go out in this pass: not past an event still being
        # appended (up to its seq: a lost race's intent names the winner's slot).
        limits: dict[str, int] = {}
        for intent in appending:
            limits[intent.stream_id] = min(limits.get(intent.stream_id, intent.seq), intent.seq)
        streams: dict[str, list[Event]] = {}
        for event in batch:
            streams.setdefault(event.stream_id, []).append(event)
        runs = await asyncio.gather(*(self._run(events) for events in streams.values()))
        published: list[Event] = []
        try:
            for run in runs:
                for event in run:
                    if event.seq > limits.get(event.stream_id, event.seq):
                        break
                    if not await self._prepared(event):
                        break
                    await self._publish(event)
                    published.append(event)
                    self._remember(event)
        finally:
            # After the acks, whatever stopped the loop: a crash before this republishes the
            # batch, which JetStream drops as duplicates within its window and inboxes after it.
            await self._store.mark_published(published)
        return len(published)

    async def _run(self, events: list[Event]) -> list[Event]:
        """A stream's batched events with the queued ones they need first, in seq order: from
        one whose predecessor is not queued (published, or never to be) to the first gap (an
        event not queued yet, whose successors wait)."""
        events = sorted(events, key=lambda event: event.seq)
        stream_id = events[0].stream_id
        # Queued before these but stored further along the outbox: they go out first, or the
        # stream would wait for a batch that may never reach them.
        earlier: list[Event] = []
        seq = events[0].seq - 1
        if self._published.get(stream_id, 0) >= seq:
            seq = 0  # this relay published it: it is out, and so is every one before it
        while seq > 0 and (queued := await self._store.queued_message(stream_id, seq)):
            earlier.append(queued)
            seq -= 1
        run = earlier[::-1] + events[:1]
        for event in events[1:]:
            while run[-1].seq + 1 < event.seq:
                between = await self._store.queued_message(stream_id, run[-1].seq + 1)
                if between is None:
                    return run
                run.append(between)
            run.append(event)
        return run

    def _remember(self, event: Event) -> None:
        self._published[event.stream_id] = max(self._published.get(event.stream_id, 0), event.seq)
        self._published.move_to_end(event.stream_id)
        if len(self._published) > REMEMBERED_STREAMS:
            self._published.popitem(last=False)

    async def _prepared(self, event: Event) -> bool:
        """Whether `before_publish` let the event go; its stream waits for a later pass if not."""
        if self._before_publish is None:
            return True
        try:
            # In the trace of the request that appended it: the hook's log lines and calls join it.
            with context.scope(event.traceparent, event=event.id):
                await self._before_publish(event)
        except Exception:
            # Hold back this stream only (its later events keep their order behind this one);
            # the other streams must not stall on it. Lag shows it.
            log.exception("before_publish failed for event %s; retrying later", event.id)
            return False
        return True

    async def step(self) -> float | None:
        """One pass of the background loop: go again at once while a full batch came back."""
        return 0 if await self.run_once() >= self._batch else None

    async def close(self) -> None:
        if self._lease is not None:
            await self._lease.release()

    async def _recover_interrupted(self, intents: list[Intent]) -> list[Intent]:
        """Finish the appends whose intent outlived the grace period (their appender crashed),
        and give back the others, still under way."""
        now = clock.now()
        appending = []
        for intent in intents:
            if now - intent.at < self._grace:
                appending.append(intent)
            elif await self._store.recover(intent):
                log.warning("queued event %s, whose append was interrupted", intent.event_id)
            else:
                log.info("dropped the intent of event %s, never appended", intent.event_id)
        return appending

    async def _publish(self, event: Event) -> None:
        ack = await self._js.publish(
            broker.subject(self._service, event.type),
            encode(event),
            timeout=self._publish_timeout,
            stream=broker.stream_name(self._service),
            headers=_headers(event),
        )
        # Counted once, when JetStream stored it: a resent copy it drops is not counted again (one
        # whose first ack never reached a killed relay is not counted at all).
        if self._metrics is not None and not ack.duplicate:
            self._metrics.events_published.labels(self._service, event.type).inc()

    def _report_lag(self, oldest: datetime | None) -> None:
        if self._metrics is None:
            return
        lag = (clock.now() - oldest).total_seconds() if oldest is not None else 0.0
        self._metrics.outbox_lag.set(max(lag, 0.0))


def _headers(event: Event) -> dict[str, str]:
    """JetStream drops a copy by its `Nats-Msg-Id`; consumers continue the `traceparent`'s trace."""
    headers = {"Nats-Msg-Id": event.id}
    if event.traceparent is not None:
        headers[TRACEPARENT] = event.traceparent
    return headers


def relay_ctx(
    *,
    collection: str = DEFAULT_COLLECTION,
    before_publish: Callable[[web.Application, Event], Awaitable[None]] | None = None,
    interval: float = 1.0,
    batch: int = 100,
    lease_ttl: float = 10.0,
    grace: float = 30.0,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx entry relaying this service's events while the app lives:
    `app.cleanup_ctx.append(relay_ctx())`, after the kit's database and broker contexts."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        store = EventStore(app[DB], collection, relayed=True)
        await store.ensure_indexes()
        relay = Relay(
            store,
            app[JETSTREAM],
            app[SETTINGS].service_name,
            lease=Lease(app[DB][LEASES_COLLECTION], f"relay.{collection}", holder_id(), lease_ttl),
            metrics=app[METRICS],
            before_publish=functools.partial(before_publish, app) if before_publish else None,
            batch=batch,
            grace=grace,
        )
        async for _ in background(f"relay.{collection}", lambda _app: relay.step(), interval)(app):
            yield
        try:
            await relay.close()
        except PyMongoError:
            log.warning("could not release the relay lease; it will expire instead")

    return context
