"""Search through the whole products app: catalog and stock changes reach results within seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from products_support import Client, Roles, product

from products.reindex import rebuild_from_environment
from products.search import index
from products.search.keys import SEARCH

FRESH_WITHIN = 5.0


async def found_within(
    client: Client,
    params: dict[str, str],
    wanted: Callable[[dict[str, Any]], bool],
    seconds: float = FRESH_WITHIN,
) -> float:
    """Seconds until a search answers what is wanted; fails past `seconds`."""
    started = time.monotonic()
    while True:
        response = await client.get("/api/v1/search", params=params)
        if response.status == 200 and wanted(await response.json()):
            return time.monotonic() - started
        assert time.monotonic() - started < seconds, f"not found within {seconds} s: {params}"
        await asyncio.sleep(0.1)


class Switch:
    """A TCP proxy in front of the engine that can cut every connection, as an outage would."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 9200
        self.up = True
        self._pipes: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def down(self) -> None:
        self.up = False
        for pipe in self._pipes:
            pipe.cancel()

    async def close(self) -> None:
        self.down()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
            try:
                await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
            finally:
                up_writer.close()
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()
            self._pipes.discard(task)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


@pytest.fixture
async def switch(opensearch_url: str) -> AsyncIterator[Switch]:
    proxy = Switch(opensearch_url)
    try:
        yield proxy
    finally:
        await proxy.close()


def names(body: dict[str, Any]) -> list[str]:
    return [item["name"] for item in body["items"]]


async def test_a_product_updated_through_the_api_is_found_by_its_new_name_within_5_seconds(
    client: Client, roles: Roles
) -> None:
    created = await client.post("/api/v1/products", json=product(), headers=roles.staff)
    assert created.status == 201
    product_id = (await created.json())["id"]
    await found_within(client, {"q": "iphnoe"}, lambda body: names(body) == ["Apple iPhone 15"])

    renamed = await client.patch(
        f"/api/v1/products/{product_id}",
        json={"name": "Apple Lumiphone Aurora"},
        headers={**roles.staff, "If-Match": '"v1"'},
    )
    assert renamed.status == 200

    await found_within(
        client, {"q": "lumiphone"}, lambda body: names(body) == ["Apple Lumiphone Aurora"]
    )


async def test_received_stock_and_archiving_reach_the_results(client: Client, roles: Roles) -> None:
    created = await client.post("/api/v1/products", json=product(), headers=roles.staff)
    product_id = (await created.json())["id"]
    in_stock = {"q": "iphone", "in_stock": "true"}
    await found_within(client, {"q": "iphone"}, lambda body: body["total"] == 1)
    assert (await (await client.get("/api/v1/search", params=in_stock)).json())["total"] == 0

    received = await client.post(
        "/api/v1/inventory/IP15-128-BLK/receipts",
        json={"quantity": 3, "reason": "delivery"},
        headers={**roles.staff, "Idempotency-Key": "receipt-1"},
    )
    assert received.status == 201
    await found_within(client, in_stock, lambda body: body["total"] == 1)

    archived = await client.delete(
        f"/api/v1/products/{product_id}", headers={**roles.staff, "If-Match": '"v1"'}
    )
    assert archived.status == 200, await archived.text()
    await found_within(client, {"q": "iphone"}, lambda body: body["total"] == 0)


async def test_the_customer_product_list_is_served_from_the_index(
    client: Client, roles: Roles
) -> None:
    for number, price in enumerate((50000, 30000, 40000)):
        body = product(slug=f"phone-{number}", name=f"Phone {number}")
        for position, variant in enumerate(body["variants"]):
            variant["sku"] = f"PHONE-{number}-{position}"
            variant["price"]["amount"] = price + position
        assert (await client.post("/api/v1/products", json=body, headers=roles.staff)).status == 201
    await found_within(client, {"brand": "Apple"}, lambda body: body["total"] == 3)

    listed = await client.get("/api/v1/products", params={"brand": "Apple", "sort": "price"})
    bad = await client.get("/api/v1/products", params={"brand": "Apple", "sort": "bogus"})

    assert listed.status == 200
    assert names(await listed.json()) == ["Phone 1", "Phone 2", "Phone 0"]
    assert bad.status == 422


async def test_while_the_engine_is_down_search_is_503_and_the_catalog_works_and_nothing_is_lost(
    start_products: Callable[..., Awaitable[Client]], switch: Switch, roles: Roles
) -> None:
    client = await start_products(OPENSEARCH_URL=await switch.start())
    first = await client.post("/api/v1/products", json=product(), headers=roles.staff)
    assert first.status == 201
    await found_within(client, {"q": "iphone"}, lambda body: body["total"] == 1)

    switch.down()
    created = await client.post(
        "/api/v1/products",
        json=product(
            slug="pixel",
            name="Google Pixel 9",
            brand="Google",
            variants=[{"sku": "PIXEL9", "price": {"amount": 69900, "currency": "EUR"}}],
        ),
        headers=roles.staff,
    )
    during = await client.get("/api/v1/search", params={"q": "pixel"})
    read = await client.get(f"/api/v1/products/{(await created.json())['id']}")
    # Long enough for the indexer to fail on the new product at least once.
    await asyncio.sleep(2)
    switch.up = True

    assert created.status == 201
    assert read.status == 200
    assert during.status == 503
    assert during.content_type == "application/problem+json"
    # Redelivery backs off (1 s, 2 s, 4 s...): allow for it.
    await found_within(client, {"q": "pixel"}, lambda body: body["total"] == 1, seconds=20)


async def test_the_rebuild_command_reindexes_the_catalog_with_its_stock(
    client: Client, roles: Roles, products_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(3):
        body = product(slug=f"phone-{number}", name=f"Phone {number}")
        for position, variant in enumerate(body["variants"]):
            variant["sku"] = f"PHONE-{number}-{position}"
        assert (await client.post("/api/v1/products", json=body, headers=roles.staff)).status == 201
    received = await client.post(
        "/api/v1/inventory/PHONE-1-0/receipts",
        json={"quantity": 2, "reason": "delivery"},
        headers={**roles.staff, "Idempotency-Key": "receipt-phone-1"},
    )
    assert received.status == 201
    await found_within(client, {"in_stock": "true"}, lambda body: body["total"] == 1)
    engine = client.server.app[SEARCH]
    before = await index.indices_of(engine.client, engine.alias)
    for name, value in products_env.items():
        monkeypatch.setenv(name, value)

    result = await rebuild_from_environment(grace=0)

    assert result.count == 3
    assert result.replaced == before
    assert await index.indices_of(engine.client, engine.alias) == [result.index]
    await found_within(
        client, {"in_stock": "true"}, lambda body: names(body) == ["Phone 1"], seconds=2
    )
    await found_within(client, {}, lambda body: body["total"] == 3, seconds=2)
