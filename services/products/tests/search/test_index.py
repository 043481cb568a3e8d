"""Keeping the index right: events in any order, stock changes, and rebuilds that never show a gap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from multidict import MultiDict
from opensearchpy import AsyncOpenSearch
from test_search_support import (
    CATALOG,
    STOCK,
    VISIBLE,
    availability_of,
    drop,
    load,
    names,
    new_alias,
    product,
    products_of,
    variant,
)

from products.model import Product, ProductStatus
from products.search import index, indexer
from products.search.errors import RebuildInProgress, SearchUnavailable
from products.search.rebuild import rebuild
from products.search.schemas import search_params
from products.search.service import SearchService, make_client
from shopkit.events import Event
from shopkit.testing.peers import free_port


@pytest.fixture
async def alias(engine: AsyncOpenSearch) -> AsyncIterator[str]:
    name = new_alias()
    try:
        yield name
    finally:
        await drop(engine, name)


@pytest.fixture
async def search(engine: AsyncOpenSearch, alias: str) -> SearchService:
    return await load(engine, alias)


def event(type: str, data: dict[str, Any], seq: int, stream_id: str = "s") -> Event:
    return Event(
        id=f"{stream_id}:{seq}",
        stream_id=stream_id,
        seq=seq,
        type=type,
        data=data,
        occurred_at=datetime.now(UTC),
    )


def changed(p: Product) -> Event:
    return event("product.changed", p.to_json(), p.version, f"product-{p.id}")


def stock(sku: str, available: int, seq: int, type: str = "stock.adjusted") -> Event:
    return event(type, {"sku": sku, "available": available}, seq, f"stock-{sku}")


async def owner_of(sku: str) -> str | None:
    return next((p.id for p in CATALOG for v in p.variants if v.sku == sku), None)


async def apply(search: SearchService, events: Iterable[Event]) -> None:
    for each in events:
        await indexer.apply(search, each, owner_of)
    await search.refresh()


async def find(search: SearchService, **query: str) -> dict[str, Any]:
    return await search.search(search_params(MultiDict(query)))


GALAXY = next(p for p in CATALOG if p.name == "Samsung Galaxy S24")


async def test_a_stock_event_flips_in_stock(search: SearchService) -> None:
    assert GALAXY.name not in names(await find(search, in_stock="true", limit="100"))

    await apply(search, [stock("S24-BLK", 4, seq=7, type="stock.received")])
    restocked = await find(search, in_stock="true", limit="100")
    await apply(search, [stock("S24-BLK", 0, seq=8, type="stock.committed")])
    sold_out = await find(search, in_stock="true", limit="100")

    assert GALAXY.name in names(restocked)
    assert GALAXY.name not in names(sold_out)


async def test_an_older_stock_event_delivered_late_changes_nothing(search: SearchService) -> None:
    await apply(search, [stock("S24-BLK", 4, seq=7), stock("S24-BLK", 0, seq=6)])

    assert GALAXY.name in names(await find(search, in_stock="true", limit="100"))


async def test_a_product_is_found_by_its_new_name(search: SearchService) -> None:
    renamed = GALAXY.with_changes(name="Samsung Galaxy Ultra Zoom", version=2)

    await apply(search, [changed(renamed)])

    assert names(await find(search, q="ultra zoom")) == ["Samsung Galaxy Ultra Zoom"]
    # Its stock survived the new snapshot.
    assert (await find(search, q="ultra zoom"))["items"][0]["in_stock"] is False


async def test_an_older_snapshot_never_overwrites_a_newer_one(search: SearchService) -> None:
    v2 = GALAXY.with_changes(name="Galaxy Two", version=2)
    v3 = GALAXY.with_changes(name="Galaxy Three", version=3)

    await apply(search, [changed(v3), changed(v2)])

    assert names(await find(search, brand="Samsung", sort="name")) == [
        "Galaxy Three",
        "Samsung Galaxy Tab S9",
    ]


async def test_a_hidden_product_leaves_the_results_and_a_late_snapshot_cannot_revive_it(
    search: SearchService,
) -> None:
    archived = GALAXY.with_changes(status=ProductStatus.ARCHIVED, version=3)
    late = GALAXY.with_changes(name="Galaxy Two", version=2)

    await apply(search, [changed(archived), changed(late)])

    found = await find(search, limit="100")
    assert found["total"] == len(VISIBLE) - 1
    assert GALAXY.id not in [item["id"] for item in found["items"]]
    assert "Samsung" not in [b["value"] for b in found["facets"]["brand"]] or all(
        b["count"] == 1 for b in found["facets"]["brand"] if b["value"] == "Samsung"
    )


async def test_a_draft_published_later_arrives_with_the_stock_received_before(
    search: SearchService,
) -> None:
    draft = product(
        20,
        "Nordic Wool Jacket",
        variant("JACKET-M", 19900, size="M"),
        brand="Fjord",
        status=ProductStatus.DRAFT,
    )
    published = draft.with_changes(status=ProductStatus.PUBLISHED, version=2)

    async def owner(sku: str) -> str | None:
        return draft.id

    for each in [changed(draft), stock("JACKET-M", 5, seq=1, type="stock.received")]:
        await indexer.apply(search, each, owner)
    await search.refresh()
    assert names(await find(search, q="jacket")) == []

    await indexer.apply(search, changed(published), owner)
    await search.refresh()

    [item] = (await find(search, q="jacket"))["items"]
    assert item["in_stock"] is True


async def test_the_first_write_to_a_fresh_deployment_creates_the_index(
    engine: AsyncOpenSearch, alias: str
) -> None:
    search = SearchService(engine, alias, cache_seconds=0)

    await apply(search, [changed(GALAXY)])

    assert names(await find(search)) == [GALAXY.name]
    assert await search.health()


async def test_a_rebuild_keeps_the_count_and_searches_never_see_an_empty_result(
    engine: AsyncOpenSearch, alias: str
) -> None:
    search = await load(engine, alias)
    totals: list[int] = []
    done = asyncio.Event()

    async def keep_searching() -> None:
        while not done.is_set():
            totals.append((await find(search))["total"])

    async def slowly(items: list[Product]) -> AsyncIterator[Product]:
        async for item in products_of(items):
            await asyncio.sleep(0.05)
            yield item

    searcher = asyncio.create_task(keep_searching())
    try:
        result = await rebuild(
            engine, alias, slowly(CATALOG), availability_of(STOCK), batch=2, grace=0.5
        )
        await asyncio.sleep(0.3)
    finally:
        done.set()
        await searcher

    assert result.count == len(VISIBLE)
    assert len(totals) > 10
    assert set(totals) == {len(VISIBLE)}
    assert await index.indices_of(engine, alias) == [result.index]
    assert await index.indices_of(engine, index.next_alias(alias)) == []
    assert not await engine.indices.exists(index=",".join(result.replaced))


async def test_changes_made_during_a_rebuild_are_in_the_new_index(
    engine: AsyncOpenSearch, alias: str
) -> None:
    search = await load(engine, alias)
    renamed = GALAXY.with_changes(name="Samsung Galaxy Renamed Midway", version=2)
    halfway = asyncio.Event()

    async def catalog() -> AsyncIterator[Product]:
        # The scan read the old snapshot of the Galaxy; the change lands while the rebuild runs.
        for position, item in enumerate(CATALOG):
            if position == 4:
                halfway.set()
                await asyncio.sleep(0.3)
            yield item

    async def change_midway() -> None:
        await halfway.wait()
        await indexer.apply(search, changed(renamed), owner_of)
        await indexer.apply(search, stock("S24-BLK", 2, seq=3), owner_of)

    await asyncio.gather(
        rebuild(engine, alias, catalog(), availability_of(STOCK), batch=3, grace=0), change_midway()
    )
    await search.refresh()

    [item] = (await find(search, q="renamed midway"))["items"]
    assert item["in_stock"] is True
    assert (await find(search))["total"] == len(VISIBLE)


async def test_a_second_rebuild_waits_for_the_first_unless_forced(
    engine: AsyncOpenSearch, alias: str
) -> None:
    await load(engine, alias)
    await index.create_index(engine, f"{alias}-leftover")
    await engine.indices.update_aliases(
        body={
            "actions": [{"add": {"index": f"{alias}-leftover", "alias": index.next_alias(alias)}}]
        }
    )

    with pytest.raises(RebuildInProgress):
        await rebuild(engine, alias, products_of(CATALOG), availability_of(STOCK), grace=0)
    result = await rebuild(
        engine, alias, products_of(CATALOG), availability_of(STOCK), grace=0, force=True
    )

    assert result.count == len(VISIBLE)
    assert not await engine.indices.exists(index=f"{alias}-leftover")


async def test_writes_fail_as_unavailable_while_the_engine_is_down() -> None:
    dead = make_client(f"http://127.0.0.1:{free_port()}")
    try:
        search = SearchService(dead, "products")
        with pytest.raises(SearchUnavailable):
            await indexer.apply(search, changed(GALAXY), owner_of)
        assert not await search.health()
    finally:
        await dead.close()


def test_the_indexer_retries_for_days_before_dead_lettering() -> None:
    # The kit redelivers with delays doubling up to 300 s: an outage this long loses nothing.
    retry_seconds = sum(min(2 ** (n - 1), 300) for n in range(1, indexer.MAX_DELIVER))
    assert retry_seconds > 3 * 24 * 3600
