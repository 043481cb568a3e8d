"""Refunds: never more than was paid, partial ones adding up, one Stripe call per refund id."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient
from payments_support import Shop, order_id

from payments.events import RefundEvent
from shopkit.testing.stripe import StripeProxy


async def _paid(shop: Shop) -> tuple[str, str]:
    order = order_id()
    intent = (await shop.created(order))["payment_intent_id"]
    await shop.intent_event("payment_intent.succeeded", order, intent)
    return order, intent


async def test_partial_refunds_add_up_and_never_exceed_what_was_paid(
    shop: Shop, stripe_proxy: StripeProxy, nats_client: NatsClient
) -> None:
    # given a payment of 2599
    order, intent = await _paid(shop)

    # when orders refunds 1000, then 1599, then 1 more
    first = await shop.refund(order, "r1", 1000)
    second = await shop.refund(order, "r2", 1599)
    third = await shop.refund(order, "r3", 1)

    # then the first two succeeded (Stripe said so), the third is refused naming what is left
    assert (first.status, second.status) == (201, 201)
    assert (await first.json())["status"] == "succeeded"
    assert (await first.json())["payment_status"] == "partially_refunded"
    assert third.status == 409
    refused = await third.json()
    assert refused["type"].endswith("/refund-exceeds-payment")
    assert refused["refundable"] == 0
    payment = await shop.payment(order)
    assert (payment["status"], payment["refunded_amount"]) == ("refunded", 2599)
    # and Stripe was asked for each with its own key, the order's ids in metadata
    created = stripe_proxy.reached_stripe("POST", "/v1/refunds")
    assert [r.idempotency_key for r in created] == [f"refund:{order}:r1", f"refund:{order}:r2"]
    assert created[0].form["payment_intent"] == intent
    assert created[0].form["amount"] == "1000"
    assert created[0].form["metadata[refund_id]"] == "r1"
    assert created[0].form["metadata[order_id]"] == order
    succeeded = await shop.published(nats_client, RefundEvent.SUCCEEDED)
    assert sorted(e.data["refunded_total"] for e in succeeded) == [1000, 2599]


async def test_the_same_refund_id_twice_is_one_refund_and_one_stripe_call(
    shop: Shop, stripe_proxy: StripeProxy
) -> None:
    # given a refund made
    order, _ = await _paid(shop)
    first = await shop.refund(order, "r1", 500)

    # when orders repeats it
    again = await shop.refund(order, "r1", 500)

    # then the same refund, 200, and one call to Stripe
    assert (first.status, again.status) == (201, 200)
    assert (await again.json())["refund_id"] == "r1"
    assert len(stripe_proxy.requests("POST", "/v1/refunds")) == 1
    assert (await shop.payment(order))["refunded_amount"] == 500


async def test_a_refund_of_a_payment_not_paid_is_refused(shop: Shop) -> None:
    order = order_id()
    await shop.created(order)

    response = await shop.refund(order, "r1", 100)

    assert response.status == 409
    assert (await response.json())["type"].endswith("/payment-not-paid")


async def test_a_refund_of_no_payment_is_404(shop: Shop) -> None:
    response = await shop.refund(order_id(), "r1", 100)

    assert response.status == 404
