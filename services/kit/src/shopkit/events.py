"""Append-only event streams with optimistic concurrency: the insert at `seq + 1` is the commit.

Each aggregate whose writes can race is a stream of events in one collection, with a unique index
on `(stream_id, seq)`. Changing it means: read the state, decide, append the next event at the seq
you read. A duplicate key means someone else appended first; reload and decide again. `decide`
is that loop, so a use case usually reads:

    def fold(count: int, event: Event) -> int:
        return count + event.data["by"]

    def increment(count: int) -> NewEvent | None:
        if count >= LIMIT:
            raise LimitReached()           # a Problem: the caller's request is refused
        return NewEvent("counter.incremented", {"by": 1}, id=f"{request_id}:increment")

    outcome = await decide(store, "counter-1", 0, fold, increment)
    outcome.state, outcome.seq, outcome.event  # the state after it, its seq, what was appended

A caller with a projection passes its state and seq (`initial=projection, after_seq=its_seq`) so
only newer events are folded. A decision appends at most one event: without transactions, two
inserts are two commits, and a conflict between them would leave half a decision in the stream.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shopkit import clock
from shopkit.problems import Conflict

S = TypeVar("S")
DEFAULT_COLLECTION = "events"


class ConcurrencyConflict(Conflict):
    """Another writer appended to the stream first; the state this decision read is stale."""

    slug, title = "concurrency-conflict", "The resource changed concurrently"


class EventIdReused(Conflict):
    """An event id given for one stream is already taken by an event of another stream."""

    slug, title = "event-id-reused", "Event id already used"


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    stream_id: str
    seq: int
    type: str
    data: dict[str, Any]
    occurred_at: datetime
    published_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """What a decision asks to append; `id` makes a retried decision idempotent when given."""

    type: str
    data: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome(Generic[S]):
    state: S
    seq: int
    event: Event | None


def utc_now() -> datetime:
    # BSON dates hold milliseconds: truncate so an event reads back equal to what was appended.
    now = clock.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


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
    return {
        "_id": event.id,
        "stream_id": event.stream_id,
        "seq": event.seq,
        "type": event.type,
        "data": event.data,
        "occurred_at": event.occurred_at,
        "published_at": event.published_at,
    }


def _from_document(document: dict[str, Any]) -> Event:
    published_at = document.get("published_at")
    return Event(
        id=document["_id"],
        stream_id=document["stream_id"],
        seq=document["seq"],
        type=document["type"],
        data=document["data"],
        occurred_at=_as_utc(document["occurred_at"]),
        published_at=_as_utc(published_at) if published_at is not None else None,
    )


class EventStore:
    """The streams of one collection (`events` is relayed to JetStream; a private one is not)."""

    def __init__(self, db: AsyncDatabase[Any], collection: str = DEFAULT_COLLECTION) -> None:
        self.collection: AsyncCollection[Any] = db[collection]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("stream_id", ASCENDING), ("seq", ASCENDING)], unique=True, name="stream_seq"
        )
        # Serves the relay's query and its whole sort: unpublished events, oldest first.
        await self.collection.create_index(
            [
                ("published_at", ASCENDING),
                ("occurred_at", ASCENDING),
                ("stream_id", ASCENDING),
                ("seq", ASCENDING),
            ],
            name="unpublished_oldest_first",
        )

    async def append(
        self,
        stream_id: str,
        expected_seq: int,
        type: str,
        data: dict[str, Any],
        event_id: str | None = None,
    ) -> Event:
        """Insert the event at `expected_seq + 1`; ConcurrencyConflict if that seq is taken.

        Appending an event id that is already in this stream returns the stored event, so a
        caller that lost the answer to its insert can simply retry.
        """
        if expected_seq < 0:
            raise ValueError("expected_seq must be 0 or more")
        # Fail at the writer, not later in the relay, which would stall on an unpublishable event.
        json.dumps(data)
        event = Event(
            id=event_id or uuid.uuid4().hex,
            stream_id=stream_id,
            seq=expected_seq + 1,
            type=type,
            data=data,
            occurred_at=utc_now(),
        )
        try:
            await self.collection.insert_one(_to_document(event))
        except DuplicateKeyError:
            # FerretDB v1 names neither the index nor the key (its errmsg is only "E11000 duplicate
            # key error collection: db.events"), and MongoDB's keyPattern names one violated index
            # even when both are: only a read tells a retried event from a lost race.
            if event_id is not None:
                stored = await self.collection.find_one({"_id": event_id})
                if stored is not None:
                    if stored["stream_id"] != stream_id:
                        raise EventIdReused(f"event {event_id} belongs to another stream") from None
                    return _from_document(stored)
            raise ConcurrencyConflict(
                f"stream {stream_id} already has an event at seq {event.seq}"
            ) from None
        return event

    async def load(self, stream_id: str, after_seq: int = 0) -> list[Event]:
        cursor = self.collection.find({"stream_id": stream_id, "seq": {"$gt": after_seq}}).sort(
            "seq", ASCENDING
        )
        return [_from_document(document) async for document in cursor]

    async def head(self, stream_id: str) -> int:
        """The stream's last seq, 0 when it has no event yet."""
        last = await self.collection.find_one(
            {"stream_id": stream_id}, {"seq": 1}, sort=[("seq", DESCENDING)]
        )
        return int(last["seq"]) if last is not None else 0

    async def unpublished(self, limit: int) -> list[Event]:
        """Events the relay has not published yet, oldest first (never by insertion order, which
        concurrent writers do not make chronological)."""
        cursor = (
            self.collection.find({"published_at": None})
            .sort([("occurred_at", ASCENDING), ("stream_id", ASCENDING), ("seq", ASCENDING)])
            .limit(limit)
        )
        return [_from_document(document) async for document in cursor]

    async def mark_published(self, event_id: str) -> None:
        """Only the relay writes `published_at`; events are otherwise immutable, so this cannot
        clobber a concurrent write even on FerretDB's read-modify-write updates."""
        await self.collection.update_one({"_id": event_id}, {"$set": {"published_at": utc_now()}})


async def decide(
    store: EventStore,
    stream_id: str,
    initial: S,
    fold: Callable[[S, Event], S],
    decision: Callable[[S], NewEvent | None],
    *,
    after_seq: int = 0,
    attempts: int = 20,
) -> Outcome[S]:
    """Fold the stream onto `initial`, let `decision` pick the next event, append it; on a
    conflict fold the newer events and decide again, at most `attempts` times.

    `decision` raises a Problem to refuse, or returns None when there is nothing to append.
    """
    state, seq = _fold(initial, after_seq, await store.load(stream_id, after_seq), fold)
    for attempt in range(attempts):
        wanted = decision(state)
        if wanted is None:
            return Outcome(state, seq, None)
        try:
            event = await store.append(stream_id, seq, wanted.type, wanted.data, wanted.id)
        except ConcurrencyConflict:
            # Jitter spreads contending writers apart, so a hot stream converges instead of
            # every loser colliding again on the next seq.
            await asyncio.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))
            state, seq = _fold(state, seq, await store.load(stream_id, seq), fold)
            continue
        if event.seq == seq + 1:
            return Outcome(fold(state, event), event.seq, event)
        # The event was already stored by an earlier try of this same decision: catch up to it.
        state, seq = _fold(state, seq, await store.load(stream_id, seq), fold)
        return Outcome(state, seq, event)
    raise ConcurrencyConflict(
        f"stream {stream_id} kept changing; gave up after {attempts} attempts"
    )


def _fold(state: S, seq: int, events: list[Event], fold: Callable[[S, Event], S]) -> tuple[S, int]:
    for event in events:
        state, seq = fold(state, event), event.seq
    return state, seq
