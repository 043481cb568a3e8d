"""Stripe's webhooks: verified over the raw body, each acted on once, the latest state winning."""

from __future__ import annotations

import time

from nats.aio.client import Client as NatsClient
from payments_support import WEBHOOK, Shop, order_id

from payments.events import PaymentEvent
from shopkit.testing.stripe import sign_webhook, webhook_event


async def _paid_order(shop: Shop) -> tuple[str, str]:
    order = order_id()
    intent = (await shop.created(order))["payment_intent_id"]
    return order, intent


async def test_a_succeeded_webhook_makes_the_payment_paid_and_publishes_it(
    shop: Shop, nats_client: NatsClient
) -> None:
    # given a payment awaiting
    order, intent = await _paid_order(shop)

    # when Stripe says it succeeded
    answer = await shop.intent_event("payment_intent.succeeded", order, intent)

    # then the payment is paid, and payment.succeeded is published once
    assert answer["outcome"] == "handled"
    payment = await shop.payment(order)
    assert (payment["status"], payment["paid_amount"]) == ("paid", 2599)
    [published] = await shop.published(nats_client, PaymentEvent.SUCCEEDED)
    assert published.data["order_id"] == order
    assert published.data["payment_intent_id"] == intent
    assert "client_secret" not in str(published.data)


async def test_a_replayed_webhook_is_acknowledged_and_acted_on_once(
    shop: Shop, nats_client: NatsClient
) -> None:
    # given a failure Stripe sent
    order, intent = await _paid_order(shop)
    failed = {
        "object": {
            "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds"}
        }
    }
    first = await shop.intent_event(
        "payment_intent.payment_failed", order, intent, event_id="evt_failed_1", **failed
    )

    # when Stripe sends the same event again
    again = await shop.intent_event(
        "payment_intent.payment_failed", order, intent, event_id="evt_failed_1", **failed
    )

    # then 2xx both times, and exactly one payment.failed, with Stripe's decline code
    assert (first["outcome"], again["outcome"]) == ("handled", "duplicate")
    [published] = await shop.published(nats_client, PaymentEvent.FAILED)
    assert published.data["reason"] == "insufficient_funds"
    assert (await shop.payment(order))["status"] == "failed"
    metrics = await (await shop.client.get("/metrics")).text()
    assert 'payments_failed_total{code="insufficient_funds"} 1.0' in metrics


async def test_a_success_for_another_amount_than_the_orders_is_counted_as_a_mismatch(
    shop: Shop,
) -> None:
    # given a payment of 2599 EUR awaiting, and one that succeeds as expected
    order, intent = await _paid_order(shop)
    matching, matching_intent = await _paid_order(shop)
    await shop.intent_event("payment_intent.succeeded", matching, matching_intent)

    # when Stripe says the first succeeded for 2500
    await shop.intent_event(
        "payment_intent.succeeded", order, intent, object={"amount_received": 2500}
    )

    # then it is paid, and only it is counted as a mismatch
    assert (await shop.payment(order))["status"] == "paid"
    metrics = await (await shop.client.get("/metrics")).text()
    assert "payments_amount_mismatches_total 1.0" in metrics


async def test_a_success_after_a_failure_makes_the_payment_paid(shop: Shop) -> None:
    # given a payment that failed (the customer's first card)
    order, intent = await _paid_order(shop)
    now = int(time.time())
    await shop.intent_event("payment_intent.payment_failed", order, intent, created=now - 60)

    # when the customer's second attempt succeeds
    await shop.intent_event("payment_intent.succeeded", order, intent, created=now)

    # then it is paid
    assert (await shop.payment(order))["status"] == "paid"


async def test_processing_or_failed_arriving_after_succeeded_change_nothing(shop: Shop) -> None:
    # given a payment that succeeded
    order, intent = await _paid_order(shop)
    now = int(time.time())
    await shop.intent_event("payment_intent.succeeded", order, intent, created=now)

    # when an earlier processing, and a later failure, arrive after it
    await shop.intent_event("payment_intent.processing", order, intent, created=now - 10)
    await shop.intent_event("payment_intent.payment_failed", order, intent, created=now + 10)

    # then it is still paid
    assert (await shop.payment(order))["status"] == "paid"


async def test_an_older_processing_does_not_replace_a_newer_failure(shop: Shop) -> None:
    order, intent = await _paid_order(shop)
    now = int(time.time())
    await shop.intent_event("payment_intent.payment_failed", order, intent, created=now)

    await shop.intent_event("payment_intent.processing", order, intent, created=now - 30)

    assert (await shop.payment(order))["status"] == "failed"


async def test_a_forged_stale_or_garbage_webhook_is_400_and_changes_nothing(
    shop: Shop, nats_client: NatsClient
) -> None:
    # given a payment awaiting
    order, intent = await _paid_order(shop)
    succeeded = {
        "id": intent,
        "object": "payment_intent",
        "status": "succeeded",
        "metadata": {"order_id": order},
    }
    payload = webhook_event("payment_intent.succeeded", succeeded)

    # when a body signed with another secret, one signed 301 s ago, garbage and nothing arrive
    forged = await shop.webhook("payment_intent.succeeded", succeeded, secret="whsec_other")
    stale = await shop.webhook(
        "payment_intent.succeeded", succeeded, signed_at=int(time.time()) - 301
    )
    garbage = await shop.client.post(
        WEBHOOK, data=b"\xff{not json", headers={"Stripe-Signature": "t=1,v1=00"}
    )
    unsigned = await shop.client.post(WEBHOOK, data=payload)
    tampered = await shop.client.post(
        WEBHOOK,
        data=payload.replace(b"succeeded", b"processing"),
        headers={"Stripe-Signature": sign_webhook(payload, "whsec_test_payments")},
    )

    # then each is a 400 problem, and the payment is as it was
    for response in (forged, stale, garbage, unsigned, tampered):
        assert response.status == 400
        assert response.content_type == "application/problem+json"
        assert (await response.json())["type"].endswith("/invalid-signature")
    assert (await shop.payment(order))["status"] == "awaiting"
    assert await shop.published(nats_client, PaymentEvent.SUCCEEDED, settle=1.0) == []


async def test_an_event_for_a_payment_intent_of_no_order_here_is_acknowledged(
    shop: Shop,
) -> None:
    answer = await shop.intent_event("payment_intent.succeeded", "someone-else", "pi_unknown")

    assert answer["outcome"] == "unknown"


async def test_an_event_type_payments_does_not_follow_is_acknowledged(shop: Shop) -> None:
    response = await shop.webhook("customer.created", {"id": "cus_1", "object": "customer"})

    assert response.status == 200
    assert (await response.json())["outcome"] == "ignored"


async def test_a_dispute_is_recorded_counted_and_published(
    shop: Shop, nats_client: NatsClient
) -> None:
    # given a paid order
    order, intent = await _paid_order(shop)
    await shop.intent_event("payment_intent.succeeded", order, intent)
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "amount": 2599,
        "currency": "eur",
        "reason": "fraudulent",
        "payment_intent": intent,
    }

    # when Stripe reports a dispute, twice
    for _ in range(2):
        response = await shop.webhook("charge.dispute.created", dispute)
        assert response.status == 200

    # then it is on the payment once, counted, and published
    [recorded] = (await shop.payment(order))["disputes"]
    assert recorded == {
        "dispute_id": "dp_1",
        "amount": 2599,
        "currency": "EUR",
        "reason": "fraudulent",
    }
    metrics = await (await shop.client.get("/metrics")).text()
    assert "payments_disputes_total 1.0" in metrics
    [published] = await shop.published(nats_client, PaymentEvent.DISPUTED)
    assert published.data["dispute_id"] == "dp_1"


async def test_staff_see_the_payment_without_its_client_secret(shop: Shop) -> None:
    order, _ = await _paid_order(shop)

    staff = await shop.client.get(
        f"/api/v1/payments/{order}", headers=shop.tokens.header("s1", "staff")
    )
    customer = await shop.client.get(f"/api/v1/payments/{order}", headers=shop.tokens.header("ann"))

    assert staff.status == 200
    body = await staff.json()
    assert "client_secret" not in body
    assert body["status"] == "awaiting"
    assert customer.status == 403
