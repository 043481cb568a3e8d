"""Inserts made at the same moment go to the database together, each with its own outcome."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

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
