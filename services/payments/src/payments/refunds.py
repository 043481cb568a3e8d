"""Refunds: decided on the payment's stream first, then asked of Stripe under a key of their own.

`refund.requested` is appended only if what is left to refund covers it (paid, less every refund
requested that has not failed), its id derived from the caller's refund id, so a repeat finds it.
Stripe is then asked with the idempotency key `refund:<order>:<refund id>` and the Stripe refund's
id kept, so a repeat makes no second call; a refund shows succeeded only once Stripe says so (its
answer, a webhook, or the reconciler, which also finishes a refund whose call never ended).
"""

from __future__ import annotations

import logging

from payments import model
from payments.errors import PaymentRejected, StripeUnavailable
from payments.ledger import Payments, fresh
from payments.model import ORDER_ENDED_REFUND, Intent, Payment, RefundStatus
from shopkit import clock

log = logging.getLogger("payments.refunds")
# Stripe's refund statuses that end a refund.
SUCCEEDED = "succeeded"
FAILED = frozenset({"failed", "canceled"})


def refund_key(order_id: str, refund_id: str) -> str:
    return f"refund:{order_id}:{refund_id}"


async def refund(
    payments: Payments,
    order_id: str,
    refund_id: str,
    amount: int,
    reason: str,
    *,
    automatic: bool = False,
) -> tuple[Payment, bool]:
    """Refund `amount` of the order's payment; the payment after it, and whether this call
    asked for the refund (False: a repeat)."""
    payment, _ = await payments.load(order_id)
    if payment.refund(refund_id) is None:
        # Before the append: a refund requested and never asked of Stripe (a crash) is finished.
        await payments.store.schedule(order_id, refund_id, clock.now() + payments.reconcile_after)
    decision = model.refund_requested(refund_id, amount, reason, automatic=automatic)
    event_id = model.refund_event_id(order_id, refund_id, RefundStatus.REQUESTED)
    outcome = await payments.decide(order_id, decision, event_id=event_id)
    made = fresh(outcome)
    if made and automatic:
        payments.metrics.automatic_refunds.inc()
    return await settle(payments, order_id, refund_id), made


async def settle(
    payments: Payments, order_id: str, refund_id: str, *, ask_stripe: bool = False
) -> Payment:
    """Take a requested refund as far as Stripe allows now: ask Stripe for it (once: a refund
    whose Stripe id is known is not asked again, only looked up when `ask_stripe`)."""
    payment, _ = await payments.load(order_id)
    wanted = payment.refund(refund_id)
    if wanted is None or wanted.status is not RefundStatus.REQUESTED:
        return payment
    assert payment.payment_intent_id is not None
    stripe_id = wanted.stripe_refund_id or await payments.store.stripe_refund_id(
        order_id, refund_id
    )
    try:
        if stripe_id is None:
            answer = await payments.stripe.create_refund(
                payment.payment_intent_id,
                wanted.amount,
                {"order_id": order_id, "refund_id": refund_id},
                refund_key(order_id, refund_id),
            )
            await payments.store.name_refund(order_id, refund_id, answer["id"])
        elif ask_stripe:
            answer = await payments.stripe.retrieve_refund(stripe_id)
        else:
            return payment
    except StripeUnavailable:
        # Requested, not yet asked: the reconciler asks again under the same key.
        log.warning("refund %s of order %s waits for Stripe", refund_id, order_id)
        return payment
    except PaymentRejected as refused:
        log.warning("Stripe refused refund %s of order %s: %s", refund_id, order_id, refused)
        return await stripe_says(payments, order_id, refund_id, stripe_id, "failed")
    return await stripe_says(payments, order_id, refund_id, answer["id"], answer["status"])


async def stripe_says(
    payments: Payments, order_id: str, refund_id: str, stripe_id: str | None, status: str
) -> Payment:
    """Record what Stripe says of a refund: succeeded or failed end it; anything else waits."""
    if status != SUCCEEDED and status not in FAILED:
        payment, _ = await payments.load(order_id)
        return payment
    succeeded = status == SUCCEEDED
    outcome = await payments.decide(
        order_id,
        model.refund_settled(refund_id, succeeded, stripe_id),
        event_id=model.refund_event_id(
            order_id, refund_id, RefundStatus.SUCCEEDED if succeeded else RefundStatus.FAILED
        ),
    )
    if fresh(outcome):
        payments.metrics.refunds.labels(status).inc()
    await payments.store.done_with(order_id, refund_id)
    return outcome.state


async def refund_ended_order(payments: Payments, order_id: str) -> None:
    """The order ended and its payment succeeded: give back whatever is left, once."""
    payment, _ = await payments.load(order_id)
    if payment.intent is not Intent.SUCCEEDED:
        return
    known = payment.refund(ORDER_ENDED_REFUND)
    if known is not None:
        if known.status is RefundStatus.REQUESTED:
            await settle(payments, order_id, ORDER_ENDED_REFUND)
        return
    if payment.refundable <= 0:
        return
    log.info("order %s ended after it was paid: refunding %d", order_id, payment.refundable)
    await refund(
        payments,
        order_id,
        ORDER_ENDED_REFUND,
        payment.refundable,
        "the order ended",
        automatic=True,
    )
