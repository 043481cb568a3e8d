"""Every query the products service makes is served by an index, read from PostgreSQL's own plans."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from products_support import Client, Roles, product

from shopkit.testing.explain import KIT_READ_WHOLE, ExplainedMongo

READ_WHOLE = {
    **KIT_READ_WHOLE,
    "open_reservations": "only the reservations still open, each removed when it ends",
}


async def test_every_query_of_a_catalog_and_a_checkout_journey_is_served_by_an_index(
    start_products: Callable[..., Awaitable[Client]],
    explained_mongo: ExplainedMongo,
    database_name: str,
    roles: Roles,
) -> None:
    client = await start_products(MONGO_URL=explained_mongo.url)

    async def call(method: str, path: str, expected: int, **kwargs: Any) -> Any:
        response = await client.request(method, path, **kwargs)
        assert response.status == expected, f"{method} {path}: {await response.text()}"
        return await response.json() if response.status != 204 else None

    def keyed(headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "Idempotency-Key": uuid.uuid4().hex}

    # Staff build a category tree and a product, and stock it.
    parent = await call(
        "POST",
        "/api/v1/categories",
        201,
        json={"slug": "phones", "name": "Phones"},
        headers=roles.staff,
    )
    child = {"slug": "smartphones", "name": "Smartphones", "parent_id": parent["id"]}
    category = await call("POST", "/api/v1/categories", 201, json=child, headers=roles.staff)
    tag = (await client.get(f"/api/v1/categories/{category['id']}")).headers["ETag"]
    await call(
        "PATCH",
        f"/api/v1/categories/{category['id']}",
        200,
        json={"name": "Smart"},
        headers={**roles.staff, "If-Match": tag},
    )
    created = await call(
        "POST",
        "/api/v1/products",
        201,
        json=product(category_id=category["id"]),
        headers=roles.staff,
    )
    sku = created["variants"][0]["sku"]
    await call(
        "POST",
        f"/api/v1/inventory/{sku}/receipts",
        201,
        json={"quantity": 5, "reason": "delivery"},
        headers=keyed(roles.staff),
    )
    await call(
        "POST",
        f"/api/v1/inventory/{sku}/adjustments",
        201,
        json={"delta": -1, "reason": "damaged"},
        headers=keyed(roles.staff),
    )
    response = await client.patch(
        f"/api/v1/products/{created['id']}",
        json={"name": "Renamed phone", "slug": "renamed-phone"},
        headers={**roles.staff, "If-Match": '"v1"'},
    )
    assert response.status == 200, await response.text()

    # Shoppers read it; carts and orders look SKUs up, reserve, commit and release.
    await call("GET", "/api/v1/categories", 200)
    await call("GET", f"/api/v1/categories/{category['id']}", 200)
    await call("GET", f"/api/v1/products/{created['id']}", 200)
    await call("GET", "/api/v1/products/renamed-phone", 200)
    await call("GET", f"/api/v1/products/skus?skus={sku}", 200)
    await call("GET", f"/api/v1/inventory/{sku}", 200, headers=roles.staff)
    await call("GET", f"/api/v1/inventory/{sku}/movements", 200, headers=roles.staff)
    for order, outcome in (("order-1", "commit"), ("order-2", "release")):
        lines = [{"sku": sku, "quantity": 1}]
        await call(
            "POST",
            "/internal/inventory/reservations",
            201,
            json={"order_id": order, "lines": lines},
            headers=roles.service,
        )
        await call("GET", f"/internal/inventory/reservations/{order}", 200, headers=roles.service)
        await call(
            "POST",
            f"/internal/inventory/reservations/{order}/{outcome}",
            204,
            headers=roles.service,
        )
    tag = (await client.get(f"/api/v1/products/{created['id']}")).headers["ETag"]
    await call(
        "DELETE",
        f"/api/v1/products/{created['id']}",
        200,
        headers={**roles.admin, "If-Match": tag},
    )

    scans = explained_mongo.unexpected(database_name, READ_WHOLE)
    assert scans == [], "\n".join(map(str, scans))
