"""Checkout under contention: many buyers for few units, and a client retrying while paying."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

from carts_support import Catalog
from orders_support import Client, Shop


async def test_two_hundred_buyers_racing_for_fifty_units_make_fifty_orders(
    start_orders: Callable[..., Awaitable[Client]], shop: Shop, catalog: Catalog
) -> None:
    # given the last 50 units of a SKU, two orders instances, and 200 buyers each with one unit
    # in their cart
    sku = "LAST-" + uuid.uuid4().hex[:8].upper()
    await catalog.add({sku: 2500}, stock=50)
    instances = [shop.orders, await start_orders()]
    buyers = [await shop.fill(shop.customer(), {sku: 1}) for _ in range(200)]

    # when all of them place their order at once
    async def buy(index: int, headers: dict[str, str]) -> int:
        response = await instances[index % 2].post(
            "/api/v1/orders",
            json={
                "shipping_method": "standard",
                "shipping_address": {
                    "recipient": "R",
                    "line1": "L",
                    "city": "C",
                    "postal_code": "1",
                    "country": "DE",
                },
                "email": "buyer@example.com",
            },
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        return response.status

    statuses = Counter(await asyncio.gather(*(buy(i, h) for i, h in enumerate(buyers))))

    # then exactly 50 orders were placed, the others were told the stock is short, and the
    # stock never went below zero
    assert statuses[201] == 50, statuses
    assert statuses[409] == 150, statuses
    level = await shop.level(sku)
    assert (level["on_hand"], level["reserved"], level["available"]) == (50, 50, 0)
    assert len(shop.stripe.requests("POST", "/v1/payment_intents")) == 50


async def test_a_client_retrying_while_the_webhook_arrives_makes_no_second_payment_intent(
    shop: Shop, catalog: Catalog
) -> None:
    # given a placed order
    sku = "SKU-" + uuid.uuid4().hex[:8].upper()
    await catalog.add({sku: 2500}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 1})
    first = await shop.place(customer, key="checkout-1")
    order = await first.json()

    # when the client retries its request while Stripe's webhook is delivered
    retries, webhook = await asyncio.gather(
        asyncio.gather(*(shop.place(customer, key="checkout-1") for _ in range(3))),
        shop.webhook("payment_intent.succeeded", order),
    )

    # then every answer is the same order, Stripe made one PaymentIntent, and the order is paid
    assert webhook.status == 200
    for retry in retries:
        assert retry.status in (200, 201), await retry.text()
        assert (await retry.json())["id"] == order["id"]
    assert len(shop.stripe.requests("POST", "/v1/payment_intents")) == 1
    paid = await shop.until(order["id"], payment_status="paid")
    assert paid["status"] == "placed"
