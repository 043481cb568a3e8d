"""Placing an order from a cart, and paying it: the order, its stock, its cart and its events."""

from __future__ import annotations

import asyncio
import uuid

from carts_support import Catalog
from orders_support import Shop


def _sku() -> str:
    return "SKU-" + uuid.uuid4().hex[:8].upper()


async def test_a_customer_places_an_order_and_pays_it(shop: Shop, catalog: Catalog) -> None:
    # given a customer whose cart holds 2 of one SKU at 12.50 EUR and 1 of another at 30.00 EUR
    mug, lamp = _sku(), _sku()
    await catalog.add({mug: 1250, lamp: 3000}, stock=10)
    customer = shop.customer()
    await shop.fill(customer, {mug: 2, lamp: 1})

    # when they place the order
    response = await shop.place(customer)

    # then it is pending with its PaymentIntent, priced from the catalog, with German VAT included
    # and free standard shipping (the subtotal passes 50 EUR); the stock is reserved
    assert response.status == 201, await response.text()
    order = await response.json()
    assert (order["status"], order["payment_status"], order["fulfilment_status"]) == (
        "pending",
        "awaiting",
        "unfulfilled",
    )
    assert order["subtotal"] == {"amount": 5500, "currency": "EUR"}
    assert order["shipping_total"]["amount"] == 0
    assert order["total"]["amount"] == 5500
    assert order["tax_inclusive"] is True
    assert order["tax_total"]["amount"] == 399 + 479  # 2500 and 3000 at 19 % included, per line
    assert order["payment"]["client_secret"]
    assert order["number"].startswith("SO-")
    assert (await shop.level(mug))["reserved"] == 2

    # when the customer pays and Stripe's webhook arrives
    paid = await shop.pay(order)

    # then the order is placed and paid, its stock committed and its lines gone from the cart
    assert paid["status"] == "placed"
    await shop_stock_committed(shop, mug, on_hand=8)
    cart = await _eventually_empty(shop, customer)
    assert cart["lines"] == []
    assert len(await shop.published("orders", "order.paid", order["id"])) == 1


async def shop_stock_committed(shop: Shop, sku: str, on_hand: int) -> None:
    for _ in range(100):
        level = await shop.level(sku)
        if level["on_hand"] == on_hand and level["reserved"] == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{sku} is {level}, not {on_hand} on hand and none reserved")


async def _eventually_empty(shop: Shop, headers: dict[str, str]) -> dict[str, object]:
    for _ in range(100):
        cart = await shop.cart(headers)
        if not cart["lines"]:
            return cart
        await asyncio.sleep(0.1)
    raise AssertionError(f"the cart still holds {cart['lines']}")
