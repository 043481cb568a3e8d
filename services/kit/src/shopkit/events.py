"""Append-only event streams with optimistic concurrency: the insert into the next slot is the commit.

Each aggregate whose writes can race is a stream of events in one collection. An event's `_id` is
its slot, `<stream id>:<seq, 12 digits>`, so the primary key itself gives one winner per seq; the
event's own id (what consumers and JetStream deduplicate on) is the field `id`, under a unique
index. Changing a stream means: decide on a state, insert the event at the seq that state was read
at plus one. A duplicate key means someone else appended first; reload and decide again. `decide`
is that loop, so a use case usually reads:

    def fold(count: int, event: Event) -> int:
        return count + event.data["by"]

    def increment(count: int) -> NewEvent | None:
        if count >= LIMIT:
            raise LimitReached()           # a Problem: the caller's request is refused
        return NewEvent("counter.incremented", {"by": 1}, id=f"{request_id}:increment")

    outcome = await decide(store, "counter-1", 0, fold, increment)
    outcome.state, outcome.seq, outcome.event  # the state after it, its seq, what was appended
    outcome.before                             # the state the event was decided on

A caller with a projection passes its state and seq (`initial=projection, after_seq=its_seq`) so
only newer events are read; a cache shared with other readers passes its own `catch_up`. A fact
already decided (an alert, a user's registration) needs no state: `append_at_end` puts it after
the last event. A decision appends at most one event: without transactions, two inserts are two
commits, and a conflict between them would leave half a decision in the stream. Every loop retries
under the one policy `RETRY`, then gives up with StreamBusy (503, Retry-After).

Why the layout is what it is (docs/data-layer.md has the whole story). Without transactions, only a
single-document insert under a unique key is atomic everywhere, FerretDB included: so the slot is the
`_id`, and appending to it is the commit. FerretDB v1 (on PostgreSQL, the local default) serves an
equality on an indexed top-level field from an index, but never pushes down a range, `$in` or sort:
so a stream is read slot by slot from a seq the caller holds (a projection or snapshot), never by a
range, and `decide` tries its append before reading (a fresh projection costs no read at all). An
event is never updated, and the relay never reads this collection: it reads the outbox that `append`
feeds (see `append`; the relay lives in `shopkit.relay`), by `_id` or unfiltered with a limit, so a
backlog the broker left does not slow each batch. On MongoDB, every one of these reads is a
primary-key lookup. (On FerretDB's SQLite option even an `_id` read scans its collection.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from datetime import UTC, datetime
from typing import Any, Generic, Self, TypeVar

from pymongo import ASCENDING, DeleteOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, PyMongoError

from shopkit import clock, context
from shopkit.grouped import GroupedInserts
from shopkit.headers import RETRY_AFTER
from shopkit.problems import Conflict, Problem, ServiceUnavailable

__all__ = [
    "DEFAULT_COLLECTION",
    "RETRY",
    "CatchUp",
    "ConcurrencyConflict",
    "Decision",
    "Event",
    "EventIdReused",
    "EventStore",
    "Intent",
    "NewEvent",
    "Outcome",
    "Payload",
    "RetryPolicy",
    "StreamBusy",
    "append_at_end",
    "decide",
    "decode",
    "encode",
    "slot",
]

S = TypeVar("S")
DEFAULT_COLLECTION = "events"
# The slot's seq is zero-padded to a fixed width, so a slot names one (stream, seq) whatever the
# stream id holds, and a stream's slots sort in seq order.
SEQ_DIGITS = 12
MAX_SEQ = 10**SEQ_DIGITS - 1
BATCH_INSERT = 1000
DUPLICATE_KEY = 11000


class ConcurrencyConflict(Conflict):
    """Another writer appended to the stream first; the state this decision read is stale.

    `winner` is the event that took the slot when the append read it (it does so when given an
    event id, to tell a retry from a lost race), so a caller can fold it without reading it again.
    """

    slug, title = "concurrency-conflict", "The resource changed concurrently"
    winner: Event | None = None


class EventIdReused(Conflict):
    """An event id given for one stream is already taken by an event of another stream."""

    slug, title = "event-id-reused", "Event id already used"


@dataclass(frozen=True, slots=True)
class Event:
    """A stored event. `traceparent` names the span that appended it (W3C Trace Context), so its
    consumers continue that trace; it travels beside the event (a message header), not in it."""

    id: str
    stream_id: str
    seq: int
    type: str
    data: dict[str, Any]
    occurred_at: datetime
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """What a decision asks to append; `id` makes a retried decision idempotent when given."""

    type: str
    data: dict[str, Any]
    id: str | None = None


class Payload:
    """One published event type's data, as its publisher defines it in its service's `events.py`.

    Subclass it as a frozen, slotted dataclass whose fields hold JSON values as they travel
    (timestamps as RFC 3339 strings; lists as tuples). `from_json` reads only the fields the class
    declares: a publisher may add fields without breaking a consumer, and a consumer may declare a
    narrower class of its own, with only the fields it needs.
    """

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        """The event's `data`."""
        values = {field.name: getattr(self, field.name) for field in fields(self)}  # type: ignore[arg-type]
        return {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """The payload in an event's `data`; KeyError when a field without a default is missing."""
        found = {
            field.name: data[field.name]  # a KeyError for a required field that is missing
            for field in fields(cls)  # type: ignore[arg-type]
            if field.name in data or field.default is field.default_factory is MISSING
        }
        make: Callable[..., Self] = cls
        return make(**{name: tuple(v) if isinstance(v, list) else v for name, v in found.items()})


@dataclass(frozen=True, slots=True)
class Outcome(Generic[S]):
    """What `decide` did: the state after it at `seq`, the event it appended (None when there
    was nothing to append) and the state that event was decided on."""

    state: S
    seq: int
    event: Event | None
    before: S


@dataclass(frozen=True, slots=True)
class Intent:
    """An append under way (or interrupted): its event may or may not be in its slot yet."""

    event_id: str
    slot: str
    stream_id: str
    seq: int
    at: datetime


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def slot(stream_id: str, seq: int) -> str:
    """The `_id` of a stream's event at `seq`."""
    return f"{stream_id}:{seq:0{SEQ_DIGITS}d}"


def encode(event: Event) -> bytes:
    """The message body published to JetStream; consumers read it back with `decode`."""
    body = {
        "id": event.id,
        "type": event.type,
        "stream_id": event.stream_id,
        "seq": event.seq,
        "occurred_at": clock.rfc3339(event.occurred_at),
        "data": event.data,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def decode(payload: bytes) -> Event:
    """An event from a message body; ValueError when the body is not one."""
    try:
        body = json.loads(payload)
        return Event(
            id=str(body["id"]),
            stream_id=str(body["stream_id"]),
            seq=int(body["seq"]),
            type=str(body["type"]),
            data=dict(body["data"]),
            occurred_at=_as_utc(datetime.fromisoformat(body["occurred_at"])),
        )
    except (KeyError, TypeError) as error:
        raise ValueError(f"not an event: {error!r}") from error


def _to_document(event: Event) -> dict[str, Any]:
    document: dict[str, Any] = {
        "_id": slot(event.stream_id, event.seq),
        "id": event.id,
        "stream_id": event.stream_id,
        "seq": event.seq,
        "type": event.type,
        "data": event.data,
        "occurred_at": event.occurred_at,
    }
    if event.traceparent is not None:
        document["traceparent"] = event.traceparent
    return document


def _from_document(document: Mapping[str, Any]) -> Event:
    return Event(
        id=document["id"],
        stream_id=document["stream_id"],
        seq=document["seq"],
        type=document["type"],
        data=document["data"],
        occurred_at=_as_utc(document["occurred_at"]),
        # Absent from events stored before traces were kept: their consumers start a trace.
        traceparent=document.get("traceparent"),
    )


class EventStore:
    """The streams of one collection, and the outbox that feeds its relay.

    A relayed store (the default `events` collection, or `relayed=True`) also writes, per append,
    an intent into `<collection>_intents` and the event's message into `<collection>_outbox`; a
    private store (any other collection, `token_events` for instance) writes the events only.
    """

    def __init__(
        self,
        db: AsyncDatabase[Any],
        collection: str = DEFAULT_COLLECTION,
        *,
        relayed: bool | None = None,
    ) -> None:
        self.collection: AsyncCollection[Any] = db[collection]
        self.outbox: AsyncCollection[Any] = db[f"{collection}_outbox"]
        self.intents: AsyncCollection[Any] = db[f"{collection}_intents"]
        self.relayed = collection == DEFAULT_COLLECTION if relayed is None else relayed
        # Appends to different streams at the same moment reach the database as one insert each
        # step (see shopkit.grouped); each still commits or fails alone.
        self._events = GroupedInserts(lambda: self.collection)
        self._intents = GroupedInserts(lambda: self.intents)
        self._messages = GroupedInserts(lambda: self.outbox)

    async def ensure_indexes(self) -> None:
        # One event per id: what makes an append retried with its id idempotent (see `_resolve`).
        await self.collection.create_index("id", unique=True, name="id")
        # The outbox needs none: the relay reads it by `_id` or unfiltered (see `unpublished`).

    # --- writing

    async def append(
        self,
        stream_id: str,
        expected_seq: int,
        type: str,
        data: dict[str, Any],
        event_id: str | None = None,
        *,
        publish: bool = True,
    ) -> Event:
        """Insert the event at `expected_seq + 1`; ConcurrencyConflict if that seq is taken.

        Appending an event id that is already in this stream returns the stored event, so a
        caller that lost the answer to its insert can simply retry. `publish=False` leaves the
        event out of the outbox: history a bulk loader writes as already published.

        In a relayed store the append is three inserts, each the commit of one step, so a crash
        between any two leaves something the relay can finish: an intent (the event may follow),
        the event, then its message (what the relay publishes); then the intent is deleted. An
        interrupted append leaves its intent behind, which the relay resolves after a grace
        period: it queues the event's message if the slot holds it, and drops the intent if not.
        """
        if not 0 <= expected_seq < MAX_SEQ:
            raise ValueError(f"expected_seq must be from 0 to {MAX_SEQ - 1}")
        # Fail at the writer, not later in the relay, which would stall on an unpublishable event.
        json.dumps(data)
        event = Event(
            id=event_id or uuid.uuid4().hex,
            stream_id=stream_id,
            seq=expected_seq + 1,
            type=type,
            data=data,
            occurred_at=clock.now(),
            traceparent=context.traceparent(),
        )
        journaled = publish and self.relayed
        # False when an append of the same event id is under way or was interrupted: its intent
        # is not ours to delete, and covers this append too when it names the same slot.
        intended = journaled and await self._intend(event)
        answer_lost = False
        try:
            try:
                await self._events.insert(_to_document(event))
            except PyMongoError as error:
                if not _answer_lost(error):
                    raise
                # The insert may have landed all the same (the database was slow, not wrong): try
                # once more with the same event, which a landed insert turns into its stored self,
                # so a committed write is answered as committed rather than as a 503.
                answer_lost = True
                await self.collection.insert_one(_to_document(event))
        except DuplicateKeyError:
            try:
                stored = await self._resolve(event, event_id is not None or answer_lost)
                if intended and stored.seq == event.seq:
                    # A concurrent append of this same event took the slot first and may die
                    # before queueing it, with no intent of its own: queue it (at worst twice).
                    await self._queue(stored)
            finally:
                # This append wrote no event for the relay to finish. (Any error but a duplicate
                # leaves the intent: the insert may have happened anyway.)
                if intended:
                    await self._forget(event)
            return stored
        if journaled:
            await self._queue(event)
            if intended:
                await self._forget(event)
        return event

    async def append_batch(self, streams: Mapping[str, Sequence[NewEvent]]) -> list[Event]:
        """Bulk-load fresh streams at seq 1, 2, ... with `insert_many`, never published.

        For seeders: the events count as history consumers need not hear of. A stream that
        already has events raises ConcurrencyConflict; the streams inserted before it stay.
        """
        events = [
            Event(
                id=wanted.id or uuid.uuid4().hex,
                stream_id=stream_id,
                seq=seq,
                type=wanted.type,
                data=wanted.data,
                occurred_at=clock.now(),
            )
            for stream_id, wanted_events in streams.items()
            for seq, wanted in enumerate(wanted_events, start=1)
        ]
        for event in events:
            json.dumps(event.data)
        for start in range(0, len(events), BATCH_INSERT):
            chunk = events[start : start + BATCH_INSERT]
            try:
                await self.collection.insert_many([_to_document(event) for event in chunk])
            except BulkWriteError as error:
                (first_error, *_) = error.details["writeErrors"] or [{}]
                if first_error.get("code") != DUPLICATE_KEY:
                    raise
                failed = chunk[first_error["index"]]
                raise ConcurrencyConflict(
                    f"stream {failed.stream_id} already has an event at seq {failed.seq}"
                ) from None
        return events

    async def _resolve(self, event: Event, caller_chose_id: bool) -> Event:
        """After a duplicate key: the stored event if this is a retry, else why it is refused.

        FerretDB v1 names neither the index nor the key in its error (only "E11000 duplicate key
        error collection: db.events"), and MongoDB's keyPattern names one violated index even when
        both are: only a read tells a retried event from a lost race.
        """
        conflict = ConcurrencyConflict(
            f"stream {event.stream_id} already has an event at seq {event.seq}"
        )
        if not caller_chose_id:
            # A fresh random id cannot be taken: the slot is. Spare the read.
            raise conflict
        stored = await self.get(event.stream_id, event.seq)
        if stored is not None:
            if stored.id == event.id:
                return stored
            conflict.winner = stored
            raise conflict
        # The slot is free, so the id is taken elsewhere (an indexed lookup; it runs only for a
        # retry that lands on another seq).
        stored = await self.find(event.id)
        if stored is None:
            raise conflict  # deleted meanwhile: only streams nothing appends to are deleted
        if stored.stream_id != event.stream_id:
            raise EventIdReused(f"event {event.id} belongs to another stream")
        return stored

    async def _intend(self, event: Event) -> bool:
        try:
            await self._intents.insert(
                {
                    "_id": event.id,
                    "slot": slot(event.stream_id, event.seq),
                    "stream_id": event.stream_id,
                    "seq": event.seq,
                    "at": event.occurred_at,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def _forget(self, event: Event) -> None:
        # By slot too: an intent of the same id for another slot belongs to another append.
        await self.intents.delete_one({"_id": event.id, "slot": slot(event.stream_id, event.seq)})

    async def _queue(self, event: Event) -> None:
        # Keyed by slot like the event itself (a slot holds one event for good), so the relay
        # finds a message's predecessor by `_id`. A duplicate: the relay recovered it first, or the
        # appender it recovered for did.
        with contextlib.suppress(DuplicateKeyError):
            await self._messages.insert(_to_document(event))

    # --- reading

    async def find(self, event_id: str) -> Event | None:
        """The event with this id, in whatever stream and slot: one read by the unique `id` index."""
        document = await self.collection.find_one({"id": event_id})
        return _from_document(document) if document is not None else None

    async def get(self, stream_id: str, seq: int) -> Event | None:
        """The stream's event at `seq`, if any: one read by `_id`."""
        document = await self.collection.find_one({"_id": slot(stream_id, seq)})
        return _from_document(document) if document is not None else None

    async def load(self, stream_id: str, after_seq: int = 0) -> list[Event]:
        """The stream's events after `after_seq`, in order.

        Reads slot after slot until a free one, each an indexed `_id` read: FerretDB pushes down
        no `$in` nor range, so one `find({"_id": {"$in": [...]}})` or a range over `seq` would
        read the whole collection; so pass the seq you already hold (a snapshot's). Seqs have no
        gaps: an append at seq n + 1 needs the state at n.
        """
        events: list[Event] = []
        while (event := await self.get(stream_id, after_seq + len(events) + 1)) is not None:
            events.append(event)
        return events

    async def head(self, stream_id: str, from_seq: int = 0) -> int:
        """The stream's last seq, 0 when it has no event yet.

        `from_seq` must be a seq the stream has reached (a projection's seq, a race winner's): the
        search starts there. Seqs have no gaps, so it gallops (probes 1, 2, 4, 8... slots ahead)
        to a free slot, then halves the gap: about 2·log2(n) `_id` reads for n newer events, so a
        long stream (a SKU's stock alerts) costs a few reads, not one per event.
        """
        known, step = from_seq, 1
        while await self._taken(stream_id, known + step):
            known, step = known + step, step * 2
        free = known + step
        while free - known > 1:
            middle = (known + free) // 2
            if await self._taken(stream_id, middle):
                known = middle
            else:
                free = middle
        return known

    async def _taken(self, stream_id: str, seq: int) -> bool:
        return await self.collection.find_one({"_id": slot(stream_id, seq)}, {"_id": 1}) is not None

    async def delete_stream(self, stream_id: str) -> int:
        """Delete every event of a stream nothing appends to any more; how many there were.

        Events are otherwise never deleted: this is for purging ended streams (a token family
        long expired). One `_id` delete per slot, last first: a delete cut short leaves slots
        1..k, whose head the next call finds again. Queued messages are not touched: use it on
        private stores, or on streams whose events are all published.
        """
        head = await self.head(stream_id)
        for seq in range(head, 0, -1):
            await self.collection.delete_one({"_id": slot(stream_id, seq)})
        return head

    # --- the relay's side of the outbox

    async def unpublished(self, limit: int) -> list[Event]:
        """Up to `limit` queued messages, in the order the outbox stores them (about the order
        they were queued, not the seq order a stream needs: the relay orders them).

        Neither filtered nor sorted: then FerretDB reads `limit` rows, where any sort would read
        and sort the whole outbox in Go, so each batch would slow with the backlog.
        """
        events = []
        async for document in self.outbox.find().limit(limit):
            event = _from_document(document)
            if "slot" in document:
                # Queued by a version that keyed messages by event id: key it by slot, or its
                # dequeue (by slot) would miss it and the relay would send it again forever.
                await self._queue(event)
                await self.outbox.delete_one({"_id": document["_id"]})
            events.append(event)
        return events

    async def queued_message(self, stream_id: str, seq: int) -> Event | None:
        """The stream's message at `seq` if it is queued: one read by `_id`."""
        document = await self.outbox.find_one({"_id": slot(stream_id, seq)})
        return _from_document(document) if document is not None else None

    async def pending_intents(self) -> list[Intent]:
        """Appends under way or interrupted; few, since each append deletes its own at the end."""
        return [
            Intent(doc["_id"], doc["slot"], doc["stream_id"], doc["seq"], _as_utc(doc["at"]))
            async for doc in self.intents.find().sort("at", ASCENDING)
        ]

    async def oldest_pending(self, sample: int = 100) -> datetime | None:
        """When the oldest event not yet published was appended (queued or still an intent),
        judged by the first `sample` messages the outbox stores, about the first queued: finding
        the very oldest would take reading the whole outbox."""
        messages = self.outbox.find({}, {"occurred_at": 1}).limit(sample)
        moments = [_as_utc(message["occurred_at"]) async for message in messages]
        intent = await self.intents.find_one({}, {"at": 1}, sort=[("at", 1)])
        moments += [_as_utc(intent["at"])] if intent else []
        return min(moments, default=None)

    async def mark_published(self, events: Iterable[Event]) -> None:
        """Dequeue published messages: their deletion is the only record of publication.

        Events carry no `published_at` (events are never written twice). One delete by `_id` per
        message (pushed down, where `$in` is not), all in one round trip.
        """
        deletes = [DeleteOne({"_id": slot(event.stream_id, event.seq)}) for event in events]
        if deletes:
            await self.outbox.bulk_write(deletes, ordered=False)

    async def recover(self, intent: Intent) -> bool:
        """Recover an interrupted append: queue its event if its slot holds it; drop the intent.

        Whether a message was queued. An event that lands after this (its appender stalled past
        the grace period) is still queued by that appender, which queues after inserting: it is
        lost only if that appender then dies before queueing, a stall and a crash in one append.
        """
        document = await self.collection.find_one({"_id": intent.slot})
        found = document is not None and document["id"] == intent.event_id
        if found:
            assert document is not None
            await self._queue(_from_document(document))
        await self.intents.delete_one({"_id": intent.event_id, "slot": intent.slot})
        return found


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a decision is tried against a stream that keeps moving, and the waits between."""

    attempts: int
    first_delay: float
    max_delay: float

    def delay(self, attempt: int) -> float:
        """A jittered wait after lost race number `attempt` (from 0): spreading contending
        writers apart lets a hot stream converge instead of every loser colliding again."""
        return random.uniform(0, min(self.max_delay, self.first_delay * 2**attempt))


# The one policy every read-decide-append loop follows. Its 19 waits add up to 1.43 s at worst
# (half that on average): a request that loses 20 races in a row meets a stream too hot to serve
# now, and is better told to come back (StreamBusy) than held until the gateway times it out.
RETRY = RetryPolicy(attempts=20, first_delay=0.002, max_delay=0.1)


class StreamBusy(ServiceUnavailable):
    """A decision lost the race for its stream's next slot every time RETRY allowed.

    A 503 with Retry-After, not a 409: the request conflicts with nothing the client could
    change (a 409 says "your request does not fit the state"); the same request, repeated a
    moment later, will most likely land. Nothing of it was appended, so a retry is safe.
    """

    slug, title = "stream-busy", "The resource is busy"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={RETRY_AFTER: "1"})


Decision = Callable[[S], NewEvent | Awaitable[NewEvent | None] | None]
"""Picks the next event from a state: raises a Problem to refuse, None when nothing is to append.
It may be async, for a check that reads elsewhere (it then runs again on each attempt)."""

CatchUp = Callable[[S, int], Awaitable[tuple[S, int]]]
"""Brings a (state, seq) to the stream's head: the newer state and its seq."""


async def decide(
    store: EventStore,
    stream_id: str,
    initial: S,
    fold: Callable[[S, Event], S],
    decision: Decision[S],
    *,
    after_seq: int = 0,
    catch_up: CatchUp[S] | None = None,
    event_id: str | None = None,
) -> Outcome[S]:
    """Let `decision` pick the next event from `initial` (the state at `after_seq`), append it;
    on a conflict catch up with the newer events and decide again, as often as RETRY allows,
    then StreamBusy.

    `event_id`, the id the decision gives its event, makes a retried write idempotent even when
    its first attempt's event changed the decision (a retried adjustment that would now overdraw):
    before a refusal or a None stands, the stream is asked for that id, and an event found is the
    outcome (its `before` is then the state after it; a replay decides nothing new).

    The append comes before any read: it succeeds only if the slot after `after_seq` is free,
    which proves the state was current, so a fresh projection costs no read at all (reads are
    what FerretDB makes slow). A refusal or a None is returned only once a read confirmed that
    no newer event exists, so it never rests on a stale state either.

    `catch_up` replaces the default read (`load` the events after the seq held, and fold them):
    a cache shares its reads with its other readers that way, and a caller that needs no state
    (see `append_at_end`) finds the head by galloping instead of reading every newer event.
    """
    state, seq = initial, after_seq

    async def newer(state: S, seq: int) -> tuple[S, int]:
        if catch_up is not None:
            caught, head = await catch_up(state, seq)
            # Both are prefixes of one append-only stream: the longer one is the newer.
            return (caught, head) if head >= seq else (state, seq)
        return _fold(state, seq, await store.load(stream_id, seq), fold)

    async def replayed(state: S, seq: int) -> Outcome[S] | None:
        landed = await store.find(event_id) if event_id is not None else None
        if landed is None or landed.stream_id != stream_id:
            return None
        return Outcome(state, seq, landed, state)

    for attempt in range(RETRY.attempts):
        known = seq
        try:
            wanted = decision(state)
            if wanted is not None and not isinstance(wanted, NewEvent):
                wanted = await wanted
        except Problem:
            state, seq = await newer(state, seq)
            if seq == known:
                if (replay := await replayed(state, seq)) is not None:
                    return replay
                raise
            continue
        if wanted is None:
            state, seq = await newer(state, seq)
            if seq == known:
                return await replayed(state, seq) or Outcome(state, seq, None, state)
            continue
        try:
            event = await store.append(stream_id, seq, wanted.type, wanted.data, wanted.id)
        except ConcurrencyConflict as conflict:
            if attempt + 1 == RETRY.attempts:
                break  # no read to catch up with: nothing will be decided on it
            await asyncio.sleep(RETRY.delay(attempt))
            if conflict.winner is not None:
                state, seq = _fold(state, seq, [conflict.winner], fold)
            state, seq = await newer(state, seq)
            continue
        if event.seq == seq + 1:
            return Outcome(fold(state, event), event.seq, event, state)
        # The event was already stored by an earlier try of this same decision: catch up to it.
        state, seq = await newer(state, seq)
        return Outcome(state, seq, event, state)
    raise StreamBusy(f"stream {stream_id} kept changing; gave up after {RETRY.attempts} attempts")


async def append_at_end(
    store: EventStore, stream_id: str, fact: NewEvent, *, after_seq: int = 0
) -> Event:
    """Append a fact already decided wherever the stream ends; the stored event.

    Tries the slot after `after_seq` (a head the caller remembers), and on a conflict gallops to
    the head from the winner (see `head`) rather than reading each newer event. Give the fact an
    id: an append retried after a crash then returns the stored event, whose seq may lie below
    the head (a caller caching the head keeps the higher one).
    """

    async def to_head(state: None, seq: int) -> tuple[None, int]:
        return None, await store.head(stream_id, from_seq=seq)

    outcome = await decide(
        store, stream_id, None, _ignore, lambda _: fact, after_seq=after_seq, catch_up=to_head
    )
    assert outcome.event is not None  # the decision always appends
    return outcome.event


def _ignore(state: None, event: Event) -> None:
    return None


def _answer_lost(error: PyMongoError) -> bool:
    """A timeout or a dropped connection: the write's outcome is unknown, not refused."""
    return error.timeout or isinstance(error, ConnectionFailure)


def _fold(state: S, seq: int, events: list[Event], fold: Callable[[S, Event], S]) -> tuple[S, int]:
    for event in events:
        state, seq = fold(state, event), event.seq
    return state, seq
