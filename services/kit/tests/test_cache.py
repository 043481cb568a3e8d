"""The local read cache: TTL, the epoch guard against stale fills, and invalidation across instances."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from shopkit.cache import Cache


async def _eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_read_that_raced_with_an_invalidation_does_not_fill_the_cache() -> None:
    cache: Cache[str] = Cache("things", ttl=60)
    epoch = cache.epoch()  # a reader starts reading the old value

    await cache.invalidate("a")  # meanwhile a writer changes it
    cache.put("a", "old", epoch)  # the reader finishes

    assert cache.get("a") is None
    cache.put("a", "new", cache.epoch())
    assert cache.get("a") == "new"


async def test_entries_expire_after_their_time_to_live() -> None:
    cache: Cache[str] = Cache("things", ttl=0.0)
    cache.put("a", "value", cache.epoch())
    assert cache.get("a") is None


async def test_an_invalidation_on_one_instance_drops_the_entry_on_another(nats_url: str) -> None:
    import nats

    service = "cache" + uuid.uuid4().hex[:8]
    first_connection, second_connection = await nats.connect(nats_url), await nats.connect(nats_url)
    first: Cache[str] = Cache("things", ttl=60)
    second: Cache[str] = Cache("things", ttl=60)
    await first.attach(first_connection, service)
    await second.attach(second_connection, service)
    await second_connection.flush()
    try:
        second.put("a", "cached", second.epoch())

        await first.invalidate("a")

        await _eventually(lambda: second.get("a") is None)
    finally:
        await first.detach()
        await second.detach()
        await first_connection.close()
        await second_connection.close()


async def test_get_or_load_reads_the_source_once_and_serves_the_cached_value_after() -> None:
    cache: Cache[str] = Cache("things", ttl=60)
    reads: list[str] = []

    async def load() -> str | None:
        reads.append("a")
        return "value"

    assert await cache.get_or_load("a", load) == "value"
    assert await cache.get_or_load("a", load) == "value"
    assert reads == ["a"]


async def test_get_or_load_does_not_cache_a_value_invalidated_while_it_was_read() -> None:
    cache: Cache[str] = Cache("things", ttl=60)

    async def load_racing_a_writer() -> str | None:
        await cache.invalidate("a")  # a writer changes the source during the read
        return "old"

    assert await cache.get_or_load("a", load_racing_a_writer) == "old"
    assert cache.get("a") is None


async def test_get_or_load_reads_a_missing_entry_again_next_time() -> None:
    cache: Cache[str] = Cache("things", ttl=60)
    answers = [None, "created"]

    async def load() -> str | None:
        return answers.pop(0)

    assert await cache.get_or_load("a", load) is None
    assert await cache.get_or_load("a", load) == "created"


async def test_an_invalidation_of_one_key_does_not_stop_another_key_from_filling() -> None:
    cache: Cache[str] = Cache("things", ttl=60)
    epoch = cache.epoch()  # a reader starts reading "a"

    await cache.invalidate("b")  # meanwhile a writer changes another key
    cache.put("a", "value", epoch)

    assert cache.get("a") == "value"


async def test_a_writer_keeps_its_new_value_and_other_instances_drop_theirs(nats_url: str) -> None:
    import nats

    service = "cache" + uuid.uuid4().hex[:8]
    writer_connection, reader_connection = (
        await nats.connect(nats_url),
        await nats.connect(nats_url),
    )
    writer: Cache[str] = Cache("things", ttl=60)
    reader: Cache[str] = Cache("things", ttl=60)
    await writer.attach(writer_connection, service)
    await reader.attach(reader_connection, service)
    await reader_connection.flush()
    try:
        reader.put("a", "old", reader.epoch())

        await writer.replace("a", "new")

        await _eventually(lambda: reader.get("a") is None)
        # The reader's next drop reaches the writer after the writer's own echo (one
        # subscription handles its messages in order): once it is in, so was the echo.
        writer.put("z", "marker", writer.epoch())
        await reader.invalidate("z")
        await _eventually(lambda: writer.get("z") is None)
        assert writer.get("a") == "new"
    finally:
        await writer.detach()
        await reader.detach()
        await writer_connection.close()
        await reader_connection.close()


async def test_a_writers_value_is_not_kept_when_the_key_was_dropped_since_it_began() -> None:
    cache: Cache[str] = Cache("things", ttl=60)
    epoch = cache.epoch()  # a writer starts its write

    await cache.invalidate("a")  # a newer write is announced meanwhile
    await cache.replace("a", "mine", epoch)

    assert cache.get("a") is None
