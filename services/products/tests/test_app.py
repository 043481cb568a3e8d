"""Inventory inside the whole products service: SKUs come from the catalog, availability reaches the
SKU lookup, the OpenAPI document describes the inventory routes, and /metrics counts refusals."""

from __future__ import annotations

import uuid
from typing import Any

from products_support import Client, Roles, product

from shopkit.keys import SETTINGS


async def _phone_with_a_gift_wrap(client: Client, roles: Roles) -> None:
    variants = [
        {"sku": "IP15-128-BLK", "price": {"amount": 79900, "currency": "EUR"}},
        {"sku": "WRAP-1", "price": {"amount": 500, "currency": "EUR"}, "track_stock": False},
    ]
    response = await client.post(
        "/api/v1/products", json=product(variants=variants), headers=roles.staff
    )
    assert response.status == 201, await response.text()


async def _receive(client: Client, roles: Roles, sku: str, quantity: int) -> Any:
    return await client.post(
        f"/api/v1/inventory/{sku}/receipts",
        json={"quantity": quantity, "reason": "delivery"},
        headers={**roles.staff, "Idempotency-Key": uuid.uuid4().hex},
    )


async def test_the_catalog_says_which_skus_exist_and_which_track_stock(
    client: Client, roles: Roles
) -> None:
    # given a product with a tracked phone and an untracked gift wrap
    await _phone_with_a_gift_wrap(client, roles)

    # when staff receive phones, and would receive wrap and a SKU no product has
    phones = await _receive(client, roles, "IP15-128-BLK", 3)
    wrap = await _receive(client, roles, "WRAP-1", 3)
    unknown = await _receive(client, roles, "NOPE-1", 3)

    # then only the phones are counted
    assert (phones.status, wrap.status, unknown.status) == (201, 409, 404)
    level = await client.get("/api/v1/inventory/WRAP-1", headers=roles.staff)
    assert (await level.json())["tracked"] is False


async def test_a_reservation_reaches_the_sku_lookup_and_the_metrics(
    client: Client, roles: Roles
) -> None:
    # given 3 phones
    await _phone_with_a_gift_wrap(client, roles)
    assert (await _receive(client, roles, "IP15-128-BLK", 3)).status == 201

    # when an order holds 2 phones and a wrap, and another wants 2 phones
    held = await client.post(
        "/internal/inventory/reservations",
        json={
            "order_id": "order-1",
            "lines": [{"sku": "IP15-128-BLK", "quantity": 2}, {"sku": "WRAP-1", "quantity": 1}],
        },
        headers=roles.service,
    )
    refused = await client.post(
        "/internal/inventory/reservations",
        json={"order_id": "order-2", "lines": [{"sku": "IP15-128-BLK", "quantity": 2}]},
        headers=roles.service,
    )

    # then the lookup carts and orders use shows what is left, and the refusal is counted
    assert (held.status, refused.status) == (201, 409)
    lookup = await client.get("/api/v1/products/skus", params={"skus": "IP15-128-BLK,WRAP-1"})
    available = {item["sku"]: item["available"] for item in (await lookup.json())["items"]}
    assert available == {"IP15-128-BLK": 1, "WRAP-1": None}
    metrics = await (await client.get("/metrics")).text()
    service = client.server.app[SETTINGS].service_name
    assert f'oversell_attempts_refused_total{{service="{service}"}} 1.0' in metrics
    assert f'stock_reservations_total{{outcome="held",service="{service}"}} 1.0' in metrics


async def test_the_openapi_document_describes_the_inventory_routes(client: Client) -> None:
    document = await (await client.get("/api/v1/products/openapi.json")).json()
    paths = document["paths"]
    internal = (await (await client.get("/internal/products/openapi.json")).json())["paths"]

    receipts = paths["/api/v1/inventory/{sku}/receipts"]["post"]
    assert receipts["x-roles"] == ["admin", "staff"]
    assert receipts["requestBody"]["content"]["application/json"]["schema"]
    assert internal["/internal/inventory/reservations"]["post"]["x-roles"] == ["service"]
    for path in (
        "/api/v1/inventory/{sku}",
        "/api/v1/inventory/{sku}/movements",
        "/api/v1/inventory/{sku}/adjustments",
    ):
        assert path in paths
    for path in (
        "/internal/inventory/reservations/{order_id}",
        "/internal/inventory/reservations/{order_id}/release",
        "/internal/inventory/reservations/{order_id}/commit",
    ):
        assert path in internal
    assert not [path for path in paths if path.startswith("/internal/")]
