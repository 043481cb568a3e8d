"""Creating an order's PaymentIntent: once per order at Stripe, under one key, bounded in time."""

from __future__ import annotations

import asyncio
import time

from payments_support import INTERNAL, Shop, order_id

from shopkit.testing.stripe import Fault, StripeProxy


async def test_creating_a_payment_makes_a_payment_intent_and_answers_its_client_secret(
    shop: Shop, stripe_proxy: StripeProxy
) -> None:
    # given an order
    order = order_id()

    # when orders asks for its payment
    response = await shop.create(order, 2599, "EUR", email="ann@example.com")

    # then Stripe made a PaymentIntent for that amount, with the order's key and metadata
    assert response.status == 201
    body = await response.json()
    assert body["payment_intent_id"].startswith("pi_")
    assert body["client_secret"]
    assert (body["order_id"], body["amount"], body["currency"]) == (order, 2599, "EUR")
    assert body["status"] == "awaiting"
    [created] = stripe_proxy.reached_stripe("POST", "/v1/payment_intents")
    assert created.idempotency_key == f"order:{order}:create"
    assert created.form["amount"] == "2599"
    assert created.form["currency"] == "eur"
    assert created.form["automatic_payment_methods[enabled]"] == "true"
    assert created.form["metadata[order_id]"] == order
    assert created.form["receipt_email"] == "ann@example.com"


async def test_asking_again_answers_the_same_payment_without_asking_stripe(
    shop: Shop, stripe_proxy: StripeProxy
) -> None:
    # given a payment created
    order = order_id()
    first = await shop.created(order)

    # when orders asks again
    response = await shop.create(order)

    # then it gets the same payment, 200, and Stripe was asked once
    assert response.status == 200
    assert await response.json() == first
    assert len(stripe_proxy.requests("POST", "/v1/payment_intents")) == 1


async def test_ten_concurrent_creations_on_two_instances_reach_stripe_once(
    start_payments, stripe_proxy: StripeProxy
) -> None:
    # given two instances
    one, two = await start_payments(), await start_payments()
    order = order_id()

    # when ten calls for one order arrive at once, on both
    responses = await asyncio.gather(*(s.create(order) for s in [one, two] * 5))

    # then one made it, the others answered the same PaymentIntent, and Stripe was asked once
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 9 + [201]
    intents = {(await r.json())["payment_intent_id"] for r in responses}
    assert len(intents) == 1
    assert len(stripe_proxy.requests("POST", "/v1/payment_intents")) == 1


async def test_another_amount_for_the_same_order_is_refused(
    shop: Shop, stripe_proxy: StripeProxy
) -> None:
    # given a payment of 2599
    order = order_id()
    await shop.created(order, 2599)

    # when orders asks for another amount
    response = await shop.create(order, 1000)

    # then 409 payment-mismatch, and Stripe was not asked
    assert response.status == 409
    assert (await response.json())["type"].endswith("/payment-mismatch")
    assert len(stripe_proxy.requests("POST", "/v1/payment_intents")) == 1


async def test_a_retry_after_a_lost_answer_reuses_the_key(
    shop: Shop, stripe_proxy: StripeProxy
) -> None:
    # given Stripe made the PaymentIntent, but its answer was lost, then Stripe failed once more
    order = order_id()
    stripe_proxy.inject(Fault.LOSE_ANSWER, method="POST", path="/v1/payment_intents")
    stripe_proxy.inject(Fault.ERROR, method="POST", path="/v1/payment_intents")

    # when payments creates the payment (retrying within the SDK, then orders retrying)
    first = await shop.create(order)
    second = await shop.create(order)

    # then every attempt carried the same key, and the payment exists
    assert first.status == 503
    assert second.status == 201
    attempts = stripe_proxy.requests("POST", "/v1/payment_intents")
    assert len(attempts) == 3
    assert {a.idempotency_key for a in attempts} == {f"order:{order}:create"}


async def test_stripe_hanging_answers_503_quickly(
    start_payments, stripe_proxy: StripeProxy
) -> None:
    # given Stripe holds every request
    shop = await start_payments(STRIPE_TIMEOUT="0.3", STRIPE_MAX_RETRIES="0")
    stripe_proxy.inject(Fault.HANG, times=5, hold=5.0)
    started = time.monotonic()

    # when orders asks for a payment
    response = await shop.create(order_id())

    # then 503 with Retry-After, well before Stripe would let go
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert (await response.json())["type"].endswith("/stripe-unavailable")
    assert time.monotonic() - started < 2.0


async def test_an_amount_below_stripes_minimum_is_refused(
    shop: Shop, stripe_proxy: StripeProxy
) -> None:
    # when orders asks for 0.49 EUR and 0.29 GBP
    euros = await shop.create(order_id(), 49, "EUR")
    pounds = await shop.create(order_id(), 29, "GBP")
    enough = await shop.create(order_id(), 30, "GBP")

    # then 422 amount-too-small for both, naming the minimum; 0.30 GBP is fine
    assert euros.status == pounds.status == 422
    body = await euros.json()
    assert body["type"].endswith("/amount-too-small")
    assert body["minimum"] == 50
    assert enough.status == 201
    assert len(stripe_proxy.requests("POST", "/v1/payment_intents")) == 1


async def test_a_bad_body_is_422_and_another_role_403(shop: Shop) -> None:
    bad = await shop.client.post(
        INTERNAL, json={"order_id": "o 1", "amount": -1, "currency": "euro"}, headers=shop.orders
    )
    customer = await shop.client.post(
        INTERNAL,
        json={"order_id": "o1", "amount": 100, "currency": "EUR"},
        headers=shop.tokens.header("ann"),
    )

    assert bad.status == 422
    assert set((await bad.json())["errors"]) == {"order_id", "amount", "currency"}
    assert customer.status == 403


async def test_an_unknown_payment_is_404(shop: Shop) -> None:
    response = await shop.client.get(f"{INTERNAL}/nope", headers=shop.orders)

    assert response.status == 404
    assert (await response.json())["type"].endswith("/payment-not-found")
