"""Every query the orders service makes is served by an index, read from PostgreSQL's own plans."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from carts_support import Catalog
from orders_support import Client, Shop

from shopkit.testing.explain import KIT_READ_WHOLE, ExplainedMongo

READ_WHOLE = {
    **KIT_READ_WHOLE,
    "open_orders": "the orders open at one moment (checkouts under way, unpaid orders), each "
    "removed once paid or ended",
}


async def test_every_query_of_an_order_journey_is_served_by_an_index(
    start_orders: Callable[..., Awaitable[Client]],
    explained_mongo: ExplainedMongo,
    names: dict[str, str],
    shop: Shop,
    catalog: Catalog,
) -> None:
    shop.orders = await start_orders(MONGO_URL=explained_mongo.url, PAYMENT_WINDOW="1")
    sku = "SKU-" + uuid.uuid4().hex[:8].upper()
    await catalog.add({sku: 4000}, stock=20)
    # A customer places an order, reads it, pays; staff ship, refund, note and list it.
    customer = shop.customer()
    order = await shop.placed(await shop.fill(customer, {sku: 1}))
    await shop.order(order["id"], customer)
    await shop.pay(order)
    for action, body, headers in (
        ("shipments", {"carrier": "DHL", "tracking_number": "1"}, {}),
        ("refunds", {"amount": 100, "reason": "dent"}, {"Idempotency-Key": "r"}),
        ("notes", {"text": "called the customer"}, {}),
    ):
        response = await shop.act(order["id"], action, body, **headers)
        assert response.status in (200, 201), await response.text()
    await shop.until(order["id"], payment_status="partially_refunded")
    for query in ("", "?status=placed", "?payment_status=paid&from=2026-01-01"):
        assert (await shop.orders.get(f"/api/v1/orders{query}", headers=shop.staff)).status == 200
    assert (await shop.orders.get("/api/v1/orders", headers=customer)).status == 200
    # A guest's order is left unpaid and expires; it is read by its cart token.
    guest = await shop.fill({}, {sku: 1})
    unpaid = await shop.placed(guest)
    await shop.order(unpaid["id"], guest)
    await shop.until(unpaid["id"], status="expired")

    scans = explained_mongo.unexpected(names["orders"], READ_WHOLE)
    assert scans == [], "\n".join(map(str, scans))
