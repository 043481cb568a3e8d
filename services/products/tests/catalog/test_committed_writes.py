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
from shopkit import idempotency
from shopkit.keys import DB
from shopkit.testing.faults import LAND_THEN_TIME_OUT, TIME_OUT, LosesAnswers


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


def answers_lost(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next product event of this instance lands but its answer is lost, and the store's own
    retry times out too: the client hears 503 of a write that committed."""
    events = client.server.app[CATALOG]._events
    lossy = LosesAnswers(events.collection, [LAND_THEN_TIME_OUT, TIME_OUT])
    monkeypatch.setattr(events, "collection", lossy)


async def test_a_change_committed_unanswered_is_answered_on_retry_not_412(
    pair: tuple[Client, Client], roles: Roles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a product, and an instance that will lose the answer of its next change
    first, second = pair
    created = await first.post("/api/v1/products", json=product(), headers=roles.staff)
    product_id = (await created.json())["id"]
    answers_lost(first, monkeypatch)
    headers = {**roles.staff, "If-Match": created.headers["ETag"], "Idempotency-Key": "rename-2"}

    # when the change commits but its client hears 503
    lost = await first.patch(
        f"/api/v1/products/{product_id}", json={"name": "Renamed"}, headers=headers
    )
    assert lost.status == 503, await lost.text()

    # then the client's retry, on the other instance, is answered with the committed version
    retried = await second.patch(
        f"/api/v1/products/{product_id}", json={"name": "Renamed"}, headers=headers
    )
    assert retried.status == 200, await retried.text()
    assert retried.headers["ETag"] == '"v2"'
    assert (await retried.json())["name"] == "Renamed"


async def test_a_creation_committed_unanswered_is_answered_on_retry_not_refused(
    pair: tuple[Client, Client], roles: Roles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an instance that will lose the answer of its next creation
    first, second = pair
    answers_lost(first, monkeypatch)
    headers = {**roles.staff, "Idempotency-Key": "create-2"}

    # when the creation commits but its client hears 503
    lost = await first.post("/api/v1/products", json=product(), headers=headers)
    assert lost.status == 503, await lost.text()

    # then the retry answers that product (not "slug taken", not a second product)
    retried = await second.post("/api/v1/products", json=product(), headers=headers)
    assert retried.status == 201, await retried.text()
    listed = await second.get("/api/v1/products/iphone-15")
    assert (await listed.json())["id"] == (await retried.json())["id"]


async def test_a_key_reused_on_another_request_after_its_record_is_purged_makes_a_new_write(
    pair: tuple[Client, Client], roles: Roles
) -> None:
    # given a product created with a key whose record has since been purged
    first, _ = pair
    headers = {**roles.staff, "Idempotency-Key": "reused-1"}
    created = await first.post("/api/v1/products", json=product(), headers=headers)
    assert created.status == 201, await created.text()
    await first.server.app[DB][idempotency.COLLECTION].delete_many({})

    # when the same key comes with another product
    other = product(slug="other-phone", name="Other phone")
    other["variants"] = [
        {**variant, "sku": f"OTHER-{n}"} for n, variant in enumerate(other["variants"])
    ]
    again = await first.post("/api/v1/products", json=other, headers=headers)

    # then that product is created, not the first one replayed
    assert again.status == 201, await again.text()
    assert (await again.json())["id"] != (await created.json())["id"]
    assert (await first.get("/api/v1/products/other-phone")).status == 200


async def test_the_relays_repair_claims_again_the_keys_a_failed_follow_up_left_unclaimed(
    pair: tuple[Client, Client], roles: Roles
) -> None:
    # given a product whose SKU claim went missing after its commit (a twin gave it back and the
    # writer's own re-claim failed)
    first, _ = pair
    created = await (
        await first.post("/api/v1/products", json=product(), headers=roles.staff)
    ).json()
    catalog = first.server.app[CATALOG]
    await catalog.store.release_claim("sku", "IP15-128-BLK", created["id"])

    # when the relay repairs before publishing the product's change
    events = await catalog._events.load(f"product-{created['id']}")
    await catalog.repair(events[-1])

    # then the product owns its SKU again
    assert await catalog.store.product_id_for_sku("IP15-128-BLK") == created["id"]


async def test_a_category_change_committed_unanswered_is_answered_on_retry_not_412(
    pair: tuple[Client, Client], roles: Roles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a category, and an instance that will lose the answer of its next change
    first, second = pair
    created = await first.post(
        "/api/v1/categories", json={"slug": "bags", "name": "Bags"}, headers=roles.staff
    )
    category_id = (await created.json())["id"]
    answers_lost(first, monkeypatch)
    headers = {**roles.staff, "If-Match": created.headers["ETag"], "Idempotency-Key": "bags-1"}

    # when the rename commits but its client hears 503
    url = f"/api/v1/categories/{category_id}"
    lost = await first.patch(url, json={"name": "Luggage"}, headers=headers)
    assert lost.status == 503, await lost.text()

    # then the retry on the other instance answers the rename, and the tree holds it once
    retried = await second.patch(url, json={"name": "Luggage"}, headers=headers)
    assert retried.status == 200, await retried.text()
    assert (await retried.json())["name"] == "Luggage"
    listed = await (await second.get("/api/v1/categories")).json()
    assert [c["name"] for c in listed["items"] if c["id"] == category_id] == ["Luggage"]
