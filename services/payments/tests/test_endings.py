"""Orders that ended: their PaymentIntent is cancelled, and money paid anyway comes back once."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient
from payments_support import Shop, eventually, order_id

from payments.events import OrderEvent, RefundEvent
from shopkit.testing.stripe import Fault, StripeProxy


async def test_a_cancelled_order_cancels_its_payment_intent_and_a_late_success_is_refunded_once(
    shop: Shop, stripe_proxy: StripeProxy, nats_client: NatsClient
) -> None:
    # given an order awaiting its payment
    order = order_id()
    intent = (await shop.created(order))["payment_intent_id"]

    # when orders cancels it
    await shop.order_ended(nats_client, OrderEvent.CANCELLED, order)

    # then payments cancels the PaymentIntent at Stripe, once, under the order's cancel key
    async def cancelled() -> bool:
        return (await shop.payment(order))["status"] == "cancelled"

    await eventually(cancelled)
    [cancel] = stripe_proxy.reached_stripe("POST", f"/v1/payment_intents/{intent}/cancel")
    assert cancel.idempotency_key == f"order:{order}:cancel"

    # and when Stripe reports a success all the same (the customer confirmed just before), twice
    await shop.intent_event("payment_intent.succeeded", order, intent)
    await shop.intent_event("payment_intent.succeeded", order, intent)

    # then the money goes back, once, in full
    payment = await shop.payment(order)
    assert payment["status"] == "refunded"
    assert [(r["refund_id"], r["amount"], r["automatic"]) for r in payment["refunds"]] == [
        ("order-ended", 2599, True)
    ]
    [refund] = stripe_proxy.reached_stripe("POST", "/v1/refunds")
    assert refund.idempotency_key == f"refund:{order}:order-ended"


async def test_a_paid_order_that_is_cancelled_is_refunded_in_full_once(
    shop: Shop, stripe_proxy: StripeProxy, nats_client: NatsClient
) -> None:
    # given a paid order, partly refunded already
    order = order_id()
    intent = (await shop.created(order))["payment_intent_id"]
    await shop.intent_event("payment_intent.succeeded", order, intent)
    assert (await shop.refund(order, "r1", 599)).status == 201

    # when orders cancels it (and the event is delivered twice)
    await shop.order_ended(nats_client, OrderEvent.CANCELLED, order)
    await shop.order_ended(nats_client, OrderEvent.CANCELLED, order)

    # then what was left is refunded automatically, once
    async def refunded() -> bool:
        return (await shop.payment(order))["status"] == "refunded"

    await eventually(refunded)
    payment = await shop.payment(order)
    automatic = [r for r in payment["refunds"] if r["automatic"]]
    assert [(r["refund_id"], r["amount"]) for r in automatic] == [("order-ended", 2000)]
    assert len(stripe_proxy.reached_stripe("POST", "/v1/refunds")) == 2
    assert stripe_proxy.reached_stripe("POST", f"/v1/payment_intents/{intent}/cancel") == []
    metrics = await (await shop.client.get("/metrics")).text()
    assert "payments_automatic_refunds_total 1.0" in metrics
    published = await shop.published(nats_client, RefundEvent.SUCCEEDED)
    assert [e.data["refund_id"] for e in published] == ["r1", "order-ended"]


async def test_a_success_reported_after_the_order_expired_is_refunded(
    shop: Shop, stripe_proxy: StripeProxy, nats_client: NatsClient
) -> None:
    # given an order awaiting its payment, and Stripe failing the cancellation for a while
    order = order_id()
    intent = (await shop.created(order))["payment_intent_id"]
    cancel = f"/v1/payment_intents/{intent}/cancel"
    stripe_proxy.inject(Fault.ERROR, times=2, path=cancel)

    # when the order expires, and the payment succeeds before the cancellation is retried
    await shop.order_ended(nats_client, OrderEvent.EXPIRED, order)

    async def tried() -> bool:
        return len(stripe_proxy.requests("POST", cancel)) >= 2

    await eventually(tried)
    await shop.intent_event("payment_intent.succeeded", order, intent)

    # then its money goes back at once, and the retried cancellation changes nothing
    payment = await shop.payment(order)
    assert [(r["refund_id"], r["amount"]) for r in payment["refunds"]] == [("order-ended", 2599)]

    async def retried() -> bool:
        return len(stripe_proxy.requests("POST", cancel)) >= 3 or (
            (await shop.payment(order))["status"] == "refunded"
        )

    await eventually(retried)
    assert (await shop.payment(order))["status"] == "refunded"
    assert len(stripe_proxy.reached_stripe("POST", "/v1/refunds")) == 1


async def test_an_order_without_a_payment_that_ends_changes_nothing(
    shop: Shop, stripe_proxy: StripeProxy, nats_client: NatsClient
) -> None:
    order = order_id()

    await shop.order_ended(nats_client, OrderEvent.CANCELLED, order)
    await shop.published(nats_client, RefundEvent.SUCCEEDED, settle=1.5)

    assert stripe_proxy.requests() == []
    response = await shop.client.get(f"/internal/payments/{order}", headers=shop.orders)
    assert response.status == 404
