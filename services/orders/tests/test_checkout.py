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
    await shop.settled(mug, on_hand=8)
    cart = await _eventually_empty(shop, customer)
    assert cart["lines"] == []
    assert len(await shop.published("orders", "order.paid", order["id"])) == 1


async def _eventually_empty(shop: Shop, headers: dict[str, str]) -> dict[str, object]:
    for _ in range(100):
        cart = await shop.cart(headers)
        if not cart["lines"]:
            return cart
        await asyncio.sleep(0.1)
    raise AssertionError(f"the cart still holds {cart['lines']}")


async def test_a_guest_places_an_order_with_their_cart_token_and_pays_it(
    shop: Shop, catalog: Catalog
) -> None:
    # given a guest's cart
    sku = _sku()
    await catalog.add({sku: 2000}, stock=5)
    guest = await shop.fill({}, {sku: 3})

    # when they place it with their email and address, and pay
    order = await shop.placed(guest, email="ada@example.com")
    paid = await shop.pay(order)

    # then the order is theirs to read by the cart token, paid, and the stock committed
    mine = await shop.order(order["id"], guest)
    assert mine["email"] == "ada@example.com"
    assert mine["customer_id"] is None
    assert paid["payment_status"] == "paid"
    await shop.settled(sku, on_hand=2)
    # and nobody else reads it: not another guest, not a customer
    other_guest = await shop.fill({}, {sku: 1})
    for stranger in (other_guest, shop.customer()):
        response = await shop.orders.get(f"/api/v1/orders/{order['id']}", headers=stranger)
        assert response.status == 404


async def test_one_idempotency_key_places_one_order_with_one_payment_intent(
    shop: Shop, catalog: Catalog
) -> None:
    # given a customer's cart
    sku = _sku()
    await catalog.add({sku: 1500}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 1})

    # when the same request is sent five times with one key
    answers = [await shop.place(customer, key="order-key-1") for _ in range(5)]

    # then one order was placed, and Stripe was asked for one PaymentIntent
    bodies = [await answer.json() for answer in answers]
    assert [answer.status for answer in answers] == [201] * 5
    assert len({body["id"] for body in bodies}) == 1
    assert len(shop.stripe.requests("POST", "/v1/payment_intents")) == 1
    assert (await shop.level(sku))["reserved"] == 1


async def test_ten_identical_requests_at_once_execute_once(shop: Shop, catalog: Catalog) -> None:
    # given a customer's cart
    sku = _sku()
    await catalog.add({sku: 1500}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 2})

    # when ten identical requests arrive at once
    answers = await asyncio.gather(*(shop.place(customer, key="same") for _ in range(10)))

    # then one ran (the others hear it is under way, or its answer), one PaymentIntent was made
    statuses = sorted(answer.status for answer in answers)
    assert set(statuses) <= {201, 409}, statuses
    assert 201 in statuses
    assert len(shop.stripe.requests("POST", "/v1/payment_intents")) == 1
    after = await shop.place(customer, key="same")
    assert after.status == 201
    assert (await shop.level(sku))["reserved"] == 2


async def test_a_key_reused_with_another_body_is_refused(shop: Shop, catalog: Catalog) -> None:
    sku = _sku()
    await catalog.add({sku: 1500}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 1})
    first = await shop.place(customer, key="k")
    assert first.status == 201

    other = await shop.place(customer, key="k", shipping_method="express")

    assert other.status == 422
    assert (await other.json())["type"].endswith("/idempotency-key-reused")


async def test_placing_again_answers_the_carts_pending_order(shop: Shop, catalog: Catalog) -> None:
    # given a pending order of the cart
    sku = _sku()
    await catalog.add({sku: 1500}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 1})
    order = await shop.placed(customer)

    # when the customer places an order again, with another key
    again = await shop.place(customer)

    # then they get the pending order, with its payment, and nothing more is reserved or charged
    assert again.status == 200, await again.text()
    body = await again.json()
    assert body["id"] == order["id"]
    assert body["payment"]["client_secret"]
    assert (await shop.level(sku))["reserved"] == 1
    assert len(shop.stripe.requests("POST", "/v1/payment_intents")) == 1


async def test_an_empty_cart_cannot_be_ordered(shop: Shop) -> None:
    response = await shop.place(shop.customer())

    assert response.status == 409
    assert (await response.json())["type"].endswith("/cart-empty")


async def test_a_short_sku_is_named_and_nothing_is_held(shop: Shop, catalog: Catalog) -> None:
    # given a cart asking for 3 of a SKU of which 3 were in stock, then 2 are sold elsewhere
    short, fine = _sku(), _sku()
    await catalog.add({short: 1000, fine: 1000}, stock=3)
    customer = await shop.fill(shop.customer(), {short: 3, fine: 1})
    rival = await shop.fill(shop.customer(), {short: 2})
    await shop.placed(rival)

    # when the customer places the order
    response = await shop.place(customer)

    # then 409 names the SKU (the cart, priced live, shows the shortage), and nothing is held
    assert response.status == 409, await response.text()
    body = await response.json()
    assert short in str(body)
    assert (await shop.level(fine))["reserved"] == 0
    assert len(shop.stripe.requests("POST", "/v1/payment_intents")) == 1  # the rival's
    cart = await shop.cart(customer)
    assert cart["checkout"] is None


async def test_a_total_below_stripes_minimum_is_refused_and_holds_nothing(
    shop: Shop, catalog: Catalog
) -> None:
    # given a cart worth 0.30 EUR, shipped for free (picked up in store)
    sku = _sku()
    await catalog.add({sku: 30}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 1})

    response = await shop.place(customer, shipping_method="pickup")

    assert response.status == 422, await response.text()
    assert (await response.json())["type"].endswith("/below-minimum-charge")
    assert (await shop.level(sku))["reserved"] == 0
    assert not shop.stripe.requests("POST", "/v1/payment_intents")
    assert (await shop.cart(customer))["checkout"] is None


async def test_a_yen_order_is_whole_yen_from_cart_to_payment(shop: Shop, catalog: Catalog) -> None:
    # given a cart in JPY (a zero-decimal currency), shipped to Japan
    sku = _sku()
    await catalog.add({sku: 1980}, stock=5, currency="JPY")
    customer = await shop.fill(shop.customer(), {sku: 2})
    tokyo = {
        "recipient": "Sei",
        "line1": "1-1 Chiyoda",
        "city": "Tokyo",
        "postal_code": "100-0001",
        "country": "JP",
    }

    order = await shop.placed(customer, shipping_address=tokyo)

    # then amounts are yen: 3960 for the lines, 800 shipping (under the 8000 threshold), 10 %
    # consumption tax included, and Stripe was asked for 4760 JPY
    assert order["total"] == {"amount": 4760, "currency": "JPY"}
    assert order["tax_total"]["amount"] == 360 + 73
    created = shop.stripe.requests("POST", "/v1/payment_intents")
    assert created[0].form["amount"] == "4760"
    assert created[0].form["currency"].lower() == "jpy"


async def test_placed_orders_are_counted_with_their_totals_and_refused_ones_are_not(
    shop: Shop, catalog: Catalog
) -> None:
    # given one cart worth 30.00 EUR and one worth 0.30 EUR (below Stripe's minimum)
    lamp, sticker = _sku(), _sku()
    await catalog.add({lamp: 3000, sticker: 30}, stock=5)
    customer = await shop.fill(shop.customer(), {lamp: 1})
    thrifty = await shop.fill(shop.customer(), {sticker: 1})

    # when both check out
    order = await shop.placed(customer, shipping_method="pickup")
    refused = await shop.place(thrifty, shipping_method="pickup")

    # then only the placed order is counted, with its total
    assert refused.status == 422
    metrics = await (await shop.orders.get("/metrics")).text()
    assert 'orders_placed_total{currency="EUR"} 1.0' in metrics
    assert f'orders_revenue_minor_units_total{{currency="EUR"}} {order["total"]["amount"]}.0' in (
        metrics
    )


async def test_a_new_order_waits_until_the_paid_one_has_left_the_cart(
    shop: Shop, catalog: Catalog
) -> None:
    # given a paid order whose lines carts has not taken out yet (its consumer is held back)
    sku = _sku()
    await catalog.add({sku: 1500}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 1})
    order = await shop.placed(customer)
    await shop.pay(order)

    # when the customer places again at once, then once the cart is free
    again = await shop.place(customer)
    await shop.cart_free(customer)
    later = await shop.place(customer)

    # then the first attempt is told to retry (or, if carts was quick, finds an empty cart) and
    # never re-orders the paid lines
    assert again.status == 409, await again.text()
    assert (await again.json())["type"].rsplit("/", 1)[-1] in ("checkout-in-progress", "cart-empty")
    assert later.status == 409
    assert (await later.json())["type"].endswith("/cart-empty")
    await shop.settled(sku, on_hand=4)
