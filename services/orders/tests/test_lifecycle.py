"""A placed order's life: payment outcomes, expiry, shipping, delivery, refunds and cancellation."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from carts_support import Catalog
from orders_support import Client, Shop


def _sku() -> str:
    return "SKU-" + uuid.uuid4().hex[:8].upper()


async def test_a_failed_payment_cancels_the_order_and_releases_its_stock_once(
    shop: Shop, catalog: Catalog
) -> None:
    # given a pending order
    sku = _sku()
    await catalog.add({sku: 1500}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 2})
    order = await shop.placed(customer)

    # when Stripe reports the payment failed (twice: a webhook is delivered at least once)
    event_id = "evt_" + uuid.uuid4().hex[:20]
    for _ in range(2):
        response = await shop.webhook("payment_intent.payment_failed", order, event_id=event_id)
        assert response.status == 200, await response.text()

    # then the order is cancelled, its stock released once, and the cart free again
    cancelled = await shop.until(order["id"], status="cancelled")
    assert cancelled["payment_status"] == "failed"
    await shop.settled(sku, on_hand=5)
    await asyncio.sleep(0.5)
    released = await shop.published("products", "stock.released", order["id"])
    assert len(released) == 1
    await shop.cart_free(customer)


async def test_an_unpaid_order_expires_and_frees_its_stock(
    start_orders: Callable[..., Awaitable[Client]], shop: Shop, catalog: Catalog
) -> None:
    # given an orders instance whose orders wait two seconds for their payment
    shop.orders = await start_orders(PAYMENT_WINDOW="2")
    sku = _sku()
    await catalog.add({sku: 1500}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 3})
    order = await shop.placed(customer)

    # when nobody pays
    expired = await shop.until(order["id"], status="expired")

    # then its stock is available again, its PaymentIntent cancelled, and the cart free
    assert expired["allowed_actions"] == ["note"]  # staff may still write on it
    await shop.settled(sku, on_hand=5)
    for _ in range(100):
        if shop.stripe.requests("POST", "/v1/payment_intents/*/cancel"):
            break
        await asyncio.sleep(0.1)
    assert len(shop.stripe.requests("POST", "/v1/payment_intents/*/cancel")) == 1
    await shop.cart_free(customer)


async def test_an_order_whose_payment_is_processing_does_not_expire(
    start_orders: Callable[..., Awaitable[Client]], shop: Shop, catalog: Catalog
) -> None:
    # (a window long enough for the processing notice to arrive inside it on a busy machine)
    shop.orders = await start_orders(PAYMENT_WINDOW="3")
    sku = _sku()
    await catalog.add({sku: 1500}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 1})
    order = await shop.placed(customer)
    window_ends = asyncio.get_running_loop().time() + 3

    # when Stripe says the payment is processing (a bank debit), and the window passes
    response = await shop.webhook("payment_intent.processing", order)
    assert response.status == 200
    await shop.until(order["id"], payment_status="processing")
    await asyncio.sleep(max(0.0, window_ends - asyncio.get_running_loop().time()) + 1.0)

    # then the order still waits, and is paid when the debit succeeds
    assert (await shop.order(order["id"]))["status"] == "pending"
    paid = await shop.pay(order)
    assert paid["status"] == "placed"


async def test_webhooks_out_of_order_leave_the_latest_state(shop: Shop, catalog: Catalog) -> None:
    sku = _sku()
    await catalog.add({sku: 1500}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 1})
    order = await shop.placed(customer)
    now = int(time.time())

    # when `succeeded` arrives, then the older `processing`
    await shop.webhook("payment_intent.succeeded", order, created=now)
    await shop.webhook("payment_intent.processing", order, created=now - 5)

    # then the order is paid
    paid = await shop.until(order["id"], payment_status="paid")
    await asyncio.sleep(0.5)
    assert (await shop.order(order["id"]))["payment_status"] == "paid"
    assert paid["status"] == "placed"


async def test_staff_ship_deliver_and_refund_part_of_a_paid_order(
    shop: Shop, catalog: Catalog
) -> None:
    # given a paid order of 40.00 EUR
    sku = _sku()
    await catalog.add({sku: 4000}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 1})
    order = await shop.pay(await shop.placed(customer))
    assert order["total"]["amount"] == 4495 - 495 + 495  # 40.00 and 4.95 shipping
    assert set(order["allowed_actions"]) == {"cancel", "ship", "refund", "note"}

    # when staff deliver it before it shipped
    early = await shop.act(order["id"], "delivery")
    # then 409 names what is allowed
    assert early.status == 409
    assert set((await early.json())["allowed_actions"]) == {"cancel", "ship", "refund", "note"}

    # when staff ship it, deliver it, and refund 10.00 of it
    shipped = await shop.act(
        order["id"], "shipments", {"carrier": "DHL", "tracking_number": "JD0001"}
    )
    assert shipped.status == 200, await shipped.text()
    delivered = await shop.act(order["id"], "delivery")
    assert delivered.status == 200, await delivered.text()
    refund = await shop.act(
        order["id"], "refunds", {"amount": 1000, "reason": "scratched"}, **{"Idempotency-Key": "r1"}
    )
    assert refund.status == 201, await refund.text()

    # then it is completed and partially refunded, each step on its timeline with who did it
    done = await shop.until(order["id"], payment_status="partially_refunded")
    assert (done["status"], done["fulfilment_status"]) == ("completed", "delivered")
    assert done["shipping"]["tracking_number"] == "JD0001"
    assert done["refunded"] == {"amount": 1000, "currency": "EUR"}
    types = [entry["type"] for entry in done["timeline"]]
    assert types[:4] == ["order.placed", "order.paid", "order.shipped", "order.delivered"]
    assert {"order.refund_requested", "order.refunded"} <= set(types)
    assert any(entry["actor"] == "staff-1" for entry in done["timeline"])
    # and a refund beyond what is left is refused
    too_much = await shop.act(
        order["id"], "refunds", {"amount": 4000, "reason": "all"}, **{"Idempotency-Key": "r2"}
    )
    assert too_much.status == 409
    assert len(shop.stripe.requests("POST", "/v1/refunds")) == 1


async def test_cancelling_a_paid_order_before_shipping_refunds_it(
    shop: Shop, catalog: Catalog
) -> None:
    sku = _sku()
    await catalog.add({sku: 4000}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 1})
    order = await shop.pay(await shop.placed(customer))
    await shop.settled(sku, on_hand=4)

    # a customer may not cancel a paid order; staff may
    refused = await shop.orders.post(
        f"/api/v1/orders/{order['id']}/cancel", json={}, headers=customer
    )
    assert refused.status == 409
    cancelled = await shop.act(order["id"], "cancel", {"reason": "customer called"})
    assert cancelled.status == 200, await cancelled.text()

    # then the money goes back in full
    refunded = await shop.until(order["id"], payment_status="refunded")
    assert refunded["status"] == "cancelled"
    assert refunded["refunded"]["amount"] == order["total"]["amount"]
    # and the unit it took, never shipped, is back on the shelf, once
    await shop.settled(sku, on_hand=5)
    # and a refund is no longer offered: what was paid went back by itself
    assert "refund" not in refunded["allowed_actions"]


async def test_a_customer_lists_their_own_orders_newest_first(shop: Shop, catalog: Catalog) -> None:
    sku = _sku()
    await catalog.add({sku: 1000}, stock=50)
    customer, other = shop.customer(), shop.customer()
    placed = []
    for _ in range(3):
        headers = await shop.fill(customer, {sku: 1})
        order = await shop.placed(headers)
        await shop.pay(order)
        await shop.cart_free(customer)  # the next order waits for this one to leave the cart
        placed.append(order["id"])
    await shop.placed(await shop.fill(other, {sku: 1}))

    first = await shop.orders.get("/api/v1/orders?limit=2", headers=customer)
    page = await first.json()
    rest = await shop.orders.get(
        f"/api/v1/orders?limit=2&cursor={page['next_cursor']}", headers=customer
    )

    listed = [o["id"] for o in page["items"]] + [o["id"] for o in (await rest.json())["items"]]
    assert listed == placed[::-1]


async def test_staff_filter_every_order_by_status(shop: Shop, catalog: Catalog) -> None:
    sku = _sku()
    await catalog.add({sku: 1000}, stock=50)
    paid = await shop.pay(await shop.placed(await shop.fill(shop.customer(), {sku: 1})))
    pending = await shop.placed(await shop.fill(shop.customer(), {sku: 1}))

    response = await shop.orders.get("/api/v1/orders?payment_status=paid", headers=shop.staff)

    ids = [order["id"] for order in (await response.json())["items"]]
    assert paid["id"] in ids
    assert pending["id"] not in ids
    mine = await shop.orders.get("/api/v1/orders?payment_status=paid", headers=shop.customer())
    assert (await mine.json())["items"] == []
