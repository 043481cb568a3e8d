"""A committed write never answers 5xx: what follows the commit (the projection) is best-effort,
repaired later, and a retry with the same Idempotency-Key replays the success.

The database timing out at exactly the line after the commit has no real peer to provoke it, so
these tests make the projection write raise the driver's own timeout error (a minimal injection).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from products_support import Client, Roles, product
from pymongo.errors import ExecutionTimeout

from products.catalog.keys import CATALOG
from products.model import Product


def projection_times_out(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every projection write of this instance fails as under a database overload."""

    async def save(product: Product) -> None:
        raise ExecutionTimeout("operation exceeded time limit")

    monkeypatch.setattr(client.server.app[CATALOG].store, "save", save)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


@pytest.fixture
async def pair(start_products: Callable[..., Awaitable[Client]]) -> tuple[Client, Client]:
    return await start_products(), await start_products()


async def test_a_creation_whose_projection_fails_answers_201_and_is_found_everywhere(
    pair: tuple[Client, Client], roles: Roles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an instance whose projection writes time out after the commit
    first, second = pair
    projection_times_out(first, monkeypatch)
    headers = {**roles.staff, "Idempotency-Key": "create-1"}

    # when a product is created there
    created = await first.post("/api/v1/products", json=product(), headers=headers)

    # then the creation is answered 201, and both instances serve it by id and by slug
    assert created.status == 201, await created.text()
    body = await created.json()
    for client in (first, second):
        for key in (body["id"], "iphone-15"):
            found = await client.get(f"/api/v1/products/{key}")
            assert found.status == 200, await found.text()
            assert (await found.json())["id"] == body["id"]
    # and a retry replays the success rather than creating it again or refusing the slug
    retried = await first.post("/api/v1/products", json=product(), headers=headers)
    assert retried.status == 201
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert (await retried.json())["id"] == body["id"]


async def test_a_change_whose_projection_fails_answers_200_and_is_repaired(
    pair: tuple[Client, Client], roles: Roles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a product, and an instance whose projection writes then time out
    first, second = pair
    created = await first.post("/api/v1/products", json=product(), headers=roles.staff)
    product_id = (await created.json())["id"]
    projection_times_out(first, monkeypatch)
    headers = {**roles.staff, "If-Match": created.headers["ETag"], "Idempotency-Key": "rename-1"}

    # when that instance changes it
    changed = await first.patch(
        f"/api/v1/products/{product_id}", json={"name": "Renamed"}, headers=headers
    )

    # then the change is answered 200 with the new version
    assert changed.status == 200, await changed.text()
    assert changed.headers["ETag"] == '"v2"'
    # and the client's retry replays that answer, not 412
    retried = await first.patch(
        f"/api/v1/products/{product_id}", json={"name": "Renamed"}, headers=headers
    )
    assert (retried.status, retried.headers["ETag"]) == (200, '"v2"')
    assert retried.headers["Idempotent-Replayed"] == "true"

    # and once the database recovers, the relay repairs the projection, which every instance serves
    monkeypatch.undo()

    async def served_renamed() -> bool:
        found: Any = await (await second.get(f"/api/v1/products/{product_id}")).json()
        return bool(found["name"] == "Renamed")

    await eventually(served_renamed)
