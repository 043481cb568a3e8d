"""The short-lived results cache: one engine query per burst of identical searches, never a failure kept."""

from __future__ import annotations

import asyncio

import pytest

from products.search.errors import SearchUnavailable
from products.search.recent import Recent


class Engine:
    def __init__(self) -> None:
        self.queries = 0
        self.failing = False

    async def query(self) -> dict[str, int]:
        self.queries += 1
        await asyncio.sleep(0.01)
        if self.failing:
            raise SearchUnavailable()
        return {"total": self.queries}


async def test_identical_concurrent_searches_share_one_query() -> None:
    engine, recent = Engine(), Recent[dict[str, int]](ttl=60)

    answers = await asyncio.gather(*(recent.get("q", engine.query) for _ in range(20)))

    assert engine.queries == 1
    assert all(answer == {"total": 1} for answer in answers)


async def test_an_answer_expires_after_its_ttl() -> None:
    engine, recent = Engine(), Recent[dict[str, int]](ttl=0.05)

    await recent.get("q", engine.query)
    await asyncio.sleep(0.1)
    again = await recent.get("q", engine.query)

    assert again == {"total": 2}


async def test_a_failure_is_not_kept() -> None:
    engine, recent = Engine(), Recent[dict[str, int]](ttl=60)
    engine.failing = True

    with pytest.raises(SearchUnavailable):
        await recent.get("q", engine.query)
    engine.failing = False

    assert await recent.get("q", engine.query) == {"total": 2}


async def test_a_caller_leaving_does_not_cancel_the_query_of_the_others() -> None:
    engine, recent = Engine(), Recent[dict[str, int]](ttl=60)
    leaving = asyncio.create_task(recent.get("q", engine.query))
    staying = asyncio.create_task(recent.get("q", engine.query))
    await asyncio.sleep(0)

    leaving.cancel()

    assert await staying == {"total": 1}


async def test_a_zero_ttl_always_asks_the_engine() -> None:
    engine, recent = Engine(), Recent[dict[str, int]](ttl=0)

    await recent.get("q", engine.query)
    await recent.get("q", engine.query)

    assert engine.queries == 2


async def test_the_oldest_keys_make_room() -> None:
    engine, recent = Engine(), Recent[dict[str, int]](ttl=60, size=2)

    for key in ("a", "b", "c", "a"):
        await recent.get(key, engine.query)

    assert engine.queries == 4
