"""Consuming another service's events: a durable pull consumer, an inbox, bounded retries, a DLQ."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import nats
from aiohttp import web
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shopkit import broker, clock, context, sweeps
from shopkit.events import Event, decode
from shopkit.headers import TRACEPARENT
from shopkit.keys import APM, DB, JETSTREAM, METRICS, SETTINGS
from shopkit.metrics import Metrics
from shopkit.tasks import background
from shopkit.traces import parse

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from shopkit.apm import Apm

__all__ = [
    "DEAD_LETTERS",
    "INBOX_COLLECTION",
    "RETENTION",
    "Consumer",
    "Handler",
    "consume",
    "dead_letter_subject",
    "subject_matches",
]

log = logging.getLogger("shopkit.inbox")
Handler = Callable[[Event], Awaitable[None]]
INBOX_COLLECTION = "inbox"
# `shop.dlq.<durable>` in stream DLQ: the kit's stream layout with "dlq" in the service's place.
DEAD_LETTERS = "dlq"
MAX_RETRY_DELAY = 300.0
MAX_ERROR_HEADER = 500
# How long a handled event is remembered: far past JetStream's redeliveries (minutes) and a relay's
# republish after the broker's 2 h duplicate window. A durable recreated from scratch replays its
# stream, and handles again what it forgot: effects are idempotent, the inbox only saves the work.
RETENTION = timedelta(days=7)
PURGE_INTERVAL = 600.0
# Outcomes of a delivery that did not handle the event (metrics label values, APM results).
RETRIED, DEAD_LETTERED = "retried", "dead_lettered"


class AttemptsExhausted(Exception):
    """A delivery past the handler's attempts (the last one crashed or timed out)."""


def dead_letter_subject(durable: str) -> str:
    return broker.subject(DEAD_LETTERS, durable)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, a trailing `>` one or more."""
    wanted, given = pattern.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(given) > index
        if index >= len(given) or token not in ("*", given[index]):
            return False
    return len(wanted) == len(given)


class Consumer:
    """Handles each event of `subjects` once per durable, whatever JetStream redelivers.

    Per message: an inbox record in state done means handled, so ack and skip; otherwise claim
    it, run the handler (whose effects must be idempotent, derived from the event id, because a
    crash after them and before `done` runs it again), mark it done, ack. A failure is retried
    with a growing delay; the last failure is republished to `shop.dlq.<durable>` and terminated.
    """

    def __init__(
        self,
        js: JetStreamContext,
        db: AsyncDatabase[Any],
        *,
        durable: str,
        stream: str,
        subjects: Sequence[str],
        handler: Handler,
        service: str = "",
        metrics: Metrics | None = None,
        max_deliver: int = 5,
        ack_wait: float = 30.0,
        retry_delay: float = 1.0,
        batch: int = 10,
        fetch_timeout: float = 1.0,
        log_every_event: bool = False,
        apm: Apm | None = None,
    ) -> None:
        if not subjects:
            raise ValueError("a consumer needs at least one subject")
        self.durable = durable
        self._js = js
        self._inbox = db[INBOX_COLLECTION]
        self._stream = broker.stream_name(stream)
        self._subjects = list(subjects)
        self._handler = handler
        self._service = service
        self._metrics = metrics
        self._max_deliver = max_deliver
        self._ack_wait = ack_wait
        self._retry_delay = retry_delay
        self._batch = batch
        self._fetch_timeout = fetch_timeout
        self._log_every_event = log_every_event
        self._apm = apm
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._next_purge = 0.0  # monotonic: the first pass purges

    async def start(self) -> None:
        """Create or update the durable consumer and bind to it; NotFoundError until the
        publisher has created its stream."""
        await broker.ensure_stream(self._js, DEAD_LETTERS)
        await sweeps.ensure_index(self._inbox)
        config = ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            # A new durable starts at the stream's beginning: an event published before the
            # consumer first existed must still be handled; the inbox absorbs any replay.
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            # One spare delivery past the handler's attempts: if the process dies during the last
            # attempt, or the DLQ publish fails, the spare one still dead-letters the message
            # instead of JetStream dropping it silently.
            max_deliver=self._max_deliver + 1,
        )
        if len(self._subjects) == 1:
            config.filter_subject = self._subjects[0]
        else:
            # nats-server 2.9 ignores filter_subjects (2.10+) and delivers the whole stream;
            # `_wanted` filters on our side too, so both behave the same.
            config.filter_subjects = self._subjects
        await self._js.add_consumer(self._stream, config)
        self._subscription = await self._js.pull_subscribe_bind(
            durable=self.durable, stream=self._stream
        )

    async def run_once(self) -> int:
        """Fetch one batch (waiting up to the fetch timeout) and process every message in it."""
        if self._subscription is None:
            await self.start()
            assert self._subscription is not None
        try:
            messages = await self._subscription.fetch(self._batch, timeout=self._fetch_timeout)
        except TimeoutError:  # nats' own, or the plain one its fetch raises when the wait runs out
            if self._metrics is not None:
                # Nothing delivered in a whole wait: nothing pending either (else the gauge
                # would keep the last delivery's count).
                self._metrics.consumer_pending.labels(self._service, self.durable).set(0)
            return 0
        for index, message in enumerate(messages):
            if index:
                # The batch is handled in order; restart the ack timer of a message that waited.
                await message.in_progress()
            await self._process(message)
        return len(messages)

    async def step(self) -> float | None:
        """One pass of the background loop; fetch again at once (the fetch itself waits).

        Every `PURGE_INTERVAL` it first forgets this durable's events handled over `RETENTION` ago.
        """
        if time.monotonic() >= self._next_purge:
            # Scheduled before purging: a failing purge is retried later, not before every fetch.
            self._next_purge = time.monotonic() + PURGE_INTERVAL
            await self.purge(clock.now())
        try:
            await self.run_once()
        except nats.js.errors.NotFoundError:
            # The publisher has not created its stream yet, or the consumer was deleted:
            # subscribe afresh on the next pass.
            log.warning("stream %s or consumer %s not found", self._stream, self.durable)
            await self.stop()
            return 5.0
        return 0

    async def purge(self, now: datetime) -> int:
        """Forget the events this durable handled whose purge day has passed (`shopkit.sweeps`)."""
        return await sweeps.purge(self._inbox, now, where={"consumer": self.durable})

    async def stop(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
            self._subscription = None

    async def _process(self, message: Msg) -> None:
        """Handle a message and end its delivery: acknowledged, redelivered later or dead-lettered."""
        if self._metrics is not None:
            # JetStream says with each delivery how many wait behind it: the lag, for free.
            pending = message.metadata.num_pending
            self._metrics.consumer_pending.labels(self._service, self.durable).set(pending or 0)
        if not self._wanted(message.subject):
            await message.ack()
            return
        try:
            event = decode(message.data)
        except ValueError as error:
            # Redelivering a body that is not an event cannot help.
            await self._dead_letter(message, "?", error)
            return
        # In the trace of the request that appended the event: the handler's log lines and the
        # calls and events it makes carry that trace id, and the event's id.
        parent = (message.headers or {}).get(TRACEPARENT)
        with context.scope(parent, event=event.id) as span:
            if self._apm is None:
                await self._settle(message, event)
                return
            with self._apm.transaction("messaging", span, parse(parent)) as ending:
                ending.name = f"{self.durable} {event.type}"
                ending.result = await self._settle(message, event)
                ending.failed = ending.result in {RETRIED, DEAD_LETTERED}

    async def _settle(self, message: Msg, event: Event) -> str:
        """Run the handler on the decoded event, then acknowledge, retry or dead-letter it; the
        outcome (handled, duplicate, retried, dead_lettered)."""
        deliveries = message.metadata.num_delivered
        try:
            handled = await self._handle_once(event, may_run=deliveries <= self._max_deliver)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if deliveries >= self._max_deliver:
                log.exception("event %s failed its last delivery; dead-lettering", event.id)
                await self._dead_letter(message, event.type, error)
                return DEAD_LETTERED
            log.warning(
                "event %s failed (delivery %d); retrying", event.id, deliveries, exc_info=True
            )
            # The exponent is capped: 2 ** 1024 overflows a float, and the delay is capped anyway.
            delay = min(self._retry_delay * 2 ** min(deliveries - 1, 30), MAX_RETRY_DELAY)
            await message.nak(delay=delay)
            self._count(event.type, RETRIED)
            return RETRIED
        await message.ack()
        outcome = "handled" if handled else "duplicate"
        self._count(event.type, outcome)
        level = logging.INFO if self._log_every_event else logging.DEBUG
        log.log(
            level,
            "%s %s by %s",
            event.type,
            outcome,
            self.durable,
            extra={"event.action": event.type, "event.outcome": "success"},
        )
        return outcome

    async def _handle_once(self, event: Event, *, may_run: bool) -> bool:
        """Run the handler unless the inbox says this durable already did; whether it ran."""
        key = f"{self.durable}:{event.id}"
        record = await self._inbox.find_one({"_id": key}, {"state": 1})
        if record is not None and record["state"] == "done":
            return False
        if not may_run:
            raise AttemptsExhausted(f"the handler ran {self._max_deliver} times")
        if record is None:
            # A duplicate means another delivery claimed it first; effects are idempotent, go on.
            with contextlib.suppress(DuplicateKeyError):
                await self._inbox.insert_one(
                    {
                        "_id": key,
                        "consumer": self.durable,
                        "event_id": event.id,
                        "type": event.type,
                        "state": "claimed",
                        "claimed_at": clock.now(),
                        sweeps.FIELD: sweeps.purge_on(clock.now() + RETENTION),
                    }
                )
        # Bounded below ack_wait, so a stuck handler is retried by us, not raced by a redelivery.
        async with asyncio.timeout(self._ack_wait * 0.8):
            await self._handler(event)
        done_at = clock.now()
        # The purge day again: a record claimed before records carried one gets it here.
        await self._inbox.update_one(
            {"_id": key},
            {
                "$set": {
                    "state": "done",
                    "done_at": done_at,
                    sweeps.FIELD: sweeps.purge_on(done_at + RETENTION),
                }
            },
        )
        return True

    async def _dead_letter(self, message: Msg, event_type: str, error: BaseException) -> None:
        headers = {
            name: value
            for name, value in (message.headers or {}).items()
            # Nats-* headers steer the publish (Nats-Expected-Stream would reject it).
            if not name.startswith("Nats-")
        }
        original_id = (message.headers or {}).get("Nats-Msg-Id", "")
        metadata = message.metadata
        headers.update(
            {
                # Scoped by durable: two consumers dead-lettering one event are two DLQ messages.
                "Nats-Msg-Id": f"{self.durable}:{original_id or metadata.sequence.stream}",
                "Shop-Dlq-Msg-Id": original_id,
                "Shop-Dlq-Subject": message.subject,
                "Shop-Dlq-Stream": metadata.stream,
                "Shop-Dlq-Stream-Seq": str(metadata.sequence.stream),
                "Shop-Dlq-Deliveries": str(metadata.num_delivered),
                "Shop-Dlq-Error": _one_line(f"{type(error).__name__}: {error}"),
            }
        )
        await self._js.publish(
            dead_letter_subject(self.durable),
            message.data,
            stream=broker.stream_name(DEAD_LETTERS),
            headers=headers,
        )
        await message.term()
        self._count(event_type, DEAD_LETTERED)
        if self._metrics is not None:
            self._metrics.events_dead_lettered.labels(self._service, event_type).inc()

    def _wanted(self, subject: str) -> bool:
        return any(subject_matches(pattern, subject) for pattern in self._subjects)

    def _count(self, event_type: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.events_handled.labels(self._service, event_type, outcome).inc()


def _one_line(text: str) -> str:
    # A header value cannot carry a line break, and an error message must not flood the DLQ.
    return " ".join(text.split())[:MAX_ERROR_HEADER]


def consume(
    durable: str,
    *,
    stream: str,
    subjects: Sequence[str],
    handler: Callable[[web.Application, Event], Awaitable[None]],
    max_deliver: int = 5,
    ack_wait: float = 30.0,
    retry_delay: float = 1.0,
    batch: int = 10,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx entry running one durable consumer while the app lives:
    `app.cleanup_ctx.append(consume("users-welcome", stream="users", subjects=[...], handler=h))`,
    where `h(app, event)` reads its stores from the app."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        consumer = Consumer(
            app[JETSTREAM],
            app[DB],
            durable=durable,
            stream=stream,
            subjects=subjects,
            handler=functools.partial(handler, app),
            service=app[SETTINGS].service_name,
            metrics=app[METRICS],
            max_deliver=max_deliver,
            ack_wait=ack_wait,
            retry_delay=retry_delay,
            batch=batch,
            log_every_event=app[SETTINGS].log_requests,
            # Absent from an app assembled without build_app (as some tests do): no APM there.
            apm=app.get(APM),
        )
        async for _ in background(f"consumer.{durable}", lambda _app: consumer.step(), 1.0)(app):
            yield
        await consumer.stop()

    return context
