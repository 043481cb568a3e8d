"""Inserts made at the same moment go to the database together, each with its own outcome."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure

from shopkit.grouped import GroupedInserts


class Counting:
    """A collection that counts the commands sent to it."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.commands = inner, 0

    async def insert_one(self, document: Any) -> Any:
        self.commands += 1
        return await self.inner.insert_one(document)

    async def insert_many(self, documents: Any, ordered: bool) -> Any:
        self.commands += 1
        return await self.inner.insert_many(documents, ordered=ordered)


async def test_concurrent_inserts_share_round_trips_and_each_hears_its_own_duplicate(
    db: AsyncDatabase[Any],
) -> None:
    await db.things.insert_one({"_id": "taken"})
    counting = Counting(db.things)
    inserts = GroupedInserts(lambda: counting)  # type: ignore[arg-type,return-value]
    ids = [f"new-{n}" for n in range(50)] + ["taken", "new-0"]

    outcomes = await asyncio.gather(
        *(inserts.insert({"_id": id_}) for id_ in ids), return_exceptions=True
    )

    failed = [id_ for id_, outcome in zip(ids, outcomes, strict=True) if outcome is not None]
    assert failed == ["taken", "new-0"]
    assert all(isinstance(outcomes[i], DuplicateKeyError) for i in (-2, -1))
    assert await db.things.count_documents({}) == 51
    assert counting.commands < 10  # a lone first insert, then the rest together


async def test_a_lone_insert_is_sent_at_once_and_raises_as_insert_one_would(
    db: AsyncDatabase[Any],
) -> None:
    inserts = GroupedInserts(lambda: db.things)

    await inserts.insert({"_id": "a"})
    with pytest.raises(DuplicateKeyError):
        await inserts.insert({"_id": "a"})


class Recording:
    """A collection in memory that records what is sent, and can refuse whole batches or hang."""

    def __init__(self, refuse_batches: bool = False, hang: bool = False) -> None:
        self.sent: list[list[str]] = []
        self.refuse_batches = refuse_batches
        self.stored: set[str] = set()
        self.released = asyncio.Event()
        if not hang:
            self.released.set()

    async def insert_one(self, document: Any) -> None:
        self.sent.append([document["_id"]])
        await asyncio.sleep(0)  # a round trip: others get to run
        await self.released.wait()
        if document["_id"] in self.stored or document["_id"] == "bad":
            raise OperationFailure("refused", 2)
        self.stored.add(document["_id"])

    async def insert_many(self, documents: Any, ordered: bool) -> None:
        self.sent.append([document["_id"] for document in documents])
        await asyncio.sleep(0)
        if self.refuse_batches:
            raise OperationFailure("the batch holds a document too large", 10334)
        self.stored.update(document["_id"] for document in documents)


async def _start(inserts: GroupedInserts, id_: str) -> asyncio.Task[None]:
    task = asyncio.create_task(inserts.insert({"_id": id_}))
    for _ in range(5):  # the caller queues its document, the sender takes what is queued
        await asyncio.sleep(0)
    return task


async def test_a_batch_goes_in_id_order_so_two_instances_never_lock_in_opposite_orders() -> None:
    recording = Recording()
    inserts = GroupedInserts(lambda: recording)  # type: ignore[arg-type,return-value]

    await asyncio.gather(*(inserts.insert({"_id": id_}) for id_ in ["d", "b", "c", "a"]))

    assert recording.sent == [["a", "b", "c", "d"]]


async def test_a_batch_refused_as_a_whole_is_sent_again_one_by_one() -> None:
    recording = Recording(refuse_batches=True)
    inserts = GroupedInserts(lambda: recording)  # type: ignore[arg-type,return-value]

    outcomes = await asyncio.gather(
        *(inserts.insert({"_id": id_}) for id_ in ["good", "bad", "fine"]),
        return_exceptions=True,
    )

    assert outcomes[0] is None
    assert isinstance(outcomes[1], OperationFailure)
    assert outcomes[2] is None
    assert recording.stored == {"good", "fine"}


async def test_a_caller_cancelled_before_its_turn_takes_its_document_back() -> None:
    recording = Recording(hang=True)
    inserts = GroupedInserts(lambda: recording)  # type: ignore[arg-type,return-value]
    first = await _start(inserts, "first")  # on its way, and the database is slow
    second = await _start(inserts, "second")  # waits for the next batch

    second.cancel()
    recording.released.set()
    await first

    assert second.cancelled()
    assert recording.sent == [["first"]]


async def test_when_the_sender_is_cancelled_no_caller_waits_forever() -> None:
    recording = Recording(hang=True)
    inserts = GroupedInserts(lambda: recording)  # type: ignore[arg-type,return-value]
    tasks = [await _start(inserts, "first"), await _start(inserts, "second")]

    for sender in list(inserts._senders):
        sender.cancel()  # the app is shutting down
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)

    assert all(isinstance(outcome, ConnectionFailure) for outcome in outcomes)


async def test_an_insert_arriving_as_the_sender_ends_is_sent_all_the_same() -> None:
    recording = Recording()
    inserts = GroupedInserts(lambda: recording)  # type: ignore[arg-type,return-value]
    answered = asyncio.Event()
    original = recording.insert_one

    async def insert_one_then_wake_another(document: Any) -> None:
        await original(document)
        answered.set()  # wakes the other task before the sender has quite finished

    recording.insert_one = insert_one_then_wake_another  # type: ignore[method-assign]

    async def another() -> None:
        await answered.wait()
        await inserts.insert({"_id": "late"})

    waiting = asyncio.create_task(another())
    await inserts.insert({"_id": "first"})

    # the late insert starts a sender of its own rather than wait for the one that just ended
    await asyncio.wait_for(waiting, 5)
    assert recording.stored == {"first", "late"}
