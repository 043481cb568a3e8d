"""Who may do what with an order, and what a request must say."""

from __future__ import annotations

import uuid

from carts_support import Catalog
from orders_support import ADDRESS, Shop


async def _order(shop: Shop, catalog: Catalog) -> tuple[dict[str, object], dict[str, str]]:
    sku = "SKU-" + uuid.uuid4().hex[:8].upper()
    await catalog.add({sku: 2000}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 1})
    return await shop.placed(customer), customer


async def test_another_customers_order_is_not_found(shop: Shop, catalog: Catalog) -> None:
    order, _ = await _order(shop, catalog)

    response = await shop.orders.get(f"/api/v1/orders/{order['id']}", headers=shop.customer())

    assert response.status == 404
    cancel = await shop.orders.post(
        f"/api/v1/orders/{order['id']}/cancel", json={}, headers=shop.customer()
    )
    assert cancel.status == 404


async def test_a_customer_cannot_ship_or_refund(shop: Shop, catalog: Catalog) -> None:
    order, customer = await _order(shop, catalog)

    for action, body in (
        ("shipments", {"carrier": "X", "tracking_number": "1"}),
        ("refunds", {"amount": 1, "reason": "r"}),
    ):
        response = await shop.orders.post(
            f"/api/v1/orders/{order['id']}/{action}",
            json=body,
            headers={**customer, "Idempotency-Key": "k"},
        )
        assert response.status == 403, action


async def test_a_customer_cancels_their_unpaid_order_and_its_stock_returns(
    shop: Shop, catalog: Catalog
) -> None:
    order, customer = await _order(shop, catalog)

    response = await shop.orders.post(
        f"/api/v1/orders/{order['id']}/cancel", json={"reason": "changed my mind"}, headers=customer
    )

    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["status"] == "cancelled"
    assert body["ended"]["reason"] == "changed my mind"
    sku = order["lines"][0]["sku"]  # type: ignore[index]
    await shop.settled(sku, on_hand=5)


async def test_nobody_places_an_order_without_a_cart(shop: Shop) -> None:
    response = await shop.orders.post(
        "/api/v1/orders",
        json={"shipping_method": "standard", "shipping_address": ADDRESS, "email": "a@b.co"},
        headers={"Idempotency-Key": "k"},
    )

    assert response.status == 401
    assert (await response.json())["type"].endswith("/cart-required")


async def test_a_client_sent_total_or_status_is_refused(shop: Shop, catalog: Catalog) -> None:
    sku = "SKU-" + uuid.uuid4().hex[:8].upper()
    await catalog.add({sku: 2000}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 1})

    for forged in ({"total": {"amount": 1, "currency": "EUR"}}, {"status": "placed"}):
        response = await shop.place(customer, **forged)
        assert response.status == 422, await response.text()
    both = await shop.place(customer, address_id="a1")
    assert both.status == 422
    nowhere = await shop.place(customer, shipping_method="teleport")
    assert nowhere.status == 422
    assert (await nowhere.json())["type"].endswith("/shipping-unavailable")
    assert (await shop.level(sku))["reserved"] == 0


async def test_an_order_needs_an_idempotency_key(shop: Shop, catalog: Catalog) -> None:
    sku = "SKU-" + uuid.uuid4().hex[:8].upper()
    await catalog.add({sku: 2000}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 1})

    response = await shop.orders.post(
        "/api/v1/orders",
        json={"shipping_method": "standard", "shipping_address": ADDRESS, "email": "a@b.co"},
        headers=customer,
    )

    assert response.status == 400


async def test_listing_cursors_and_days_the_list_never_gave_are_refused(shop: Shop) -> None:
    for query in (
        "?cursor=WyIyMDI0VzAxVDAwMDAwMCIsICJ4Il0",  # ["2024W01T000000", "x"]
        "?to=0001-01-01",
        "?from=0001-01-01&to=0001-01-02",
        "?from=2000-01-01",
    ):
        response = await shop.orders.get(f"/api/v1/orders{query}", headers=shop.staff)
        assert response.status in (400, 422), (query, await response.text())
