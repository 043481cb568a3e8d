"""What Stripe says of a PaymentIntent, recorded on the order's payment stream.

A change is appended once (its id derives from what reported it: the Stripe event, or for a final
state the state itself), and only if it is news: succeeded and cancelled are final, processing and
failed replace each other in the order Stripe reported them. A payment that succeeds for an order
that ended is refunded at once.
"""

from __future__ import annotations

import logging
from typing import Any

from payments import model, refunds
from payments.ledger import Payments, fresh
from payments.model import Intent, Payment
from shopkit import clock

log = logging.getLogger("payments.intents")

# Stripe's PaymentIntent statuses the platform follows; any other (requires_action...) is awaiting.
_STATUSES = {
    "processing": Intent.PROCESSING,
    "succeeded": Intent.SUCCEEDED,
    "canceled": Intent.CANCELLED,
}


def reason_of(intent: Intent, stripe_intent: dict[str, Any]) -> str | None:
    if intent is Intent.FAILED:
        error = stripe_intent.get("last_payment_error") or {}
        found = error.get("decline_code") or error.get("code") or error.get("message")
        return str(found) if found else "payment_failed"
    if intent is Intent.CANCELLED:
        return str(stripe_intent.get("cancellation_reason") or "abandoned")
    return None


async def changed(
    payments: Payments,
    order_id: str,
    intent: Intent,
    stripe_intent: dict[str, Any],
    *,
    at: int,
    cause: str,
) -> Payment:
    """Stripe reported the PaymentIntent in `intent` at `at` (Unix seconds), by `cause`."""
    reason = reason_of(intent, stripe_intent)
    event_id = model.intent_event_id(order_id, intent, cause)
    outcome = await payments.decide(
        order_id, model.intent_changed(intent, at, reason, event_id), event_id=event_id
    )
    payment = outcome.state
    if fresh(outcome):
        if intent is Intent.SUCCEEDED:
            payments.metrics.succeeded.labels(payment.currency).inc()
            _check_amount(payments, payment, stripe_intent)
        elif intent is Intent.FAILED:
            payments.metrics.failed.labels(reason or "unknown").inc()
    if payment.intent is Intent.SUCCEEDED and await payments.store.has_ended(order_id):
        await refunds.refund_ended_order(payments, order_id)
        payment, _ = await payments.load(order_id)
    return payment


def _check_amount(payments: Payments, payment: Payment, stripe_intent: dict[str, Any]) -> None:
    """Count and log a success for another sum than the order's: the customer paid what Stripe
    says, so staff must settle the difference by hand (a refund, or asking for the rest)."""
    received = stripe_intent.get("amount_received", stripe_intent.get("amount"))
    currency = str(stripe_intent.get("currency") or payment.currency).upper()
    if not isinstance(received, int) or (received, currency) == (payment.amount, payment.currency):
        return
    log.error(
        "order %s paid %s %s at Stripe for %s %s",
        payment.order_id,
        received,
        currency,
        payment.amount,
        payment.currency,
    )
    payments.metrics.amount_mismatches.inc()


async def retrieved(payments: Payments, order_id: str, stripe_intent: dict[str, Any]) -> Payment:
    """Record the PaymentIntent as Stripe answers it now (the latest word on it)."""
    status = str(stripe_intent.get("status"))
    intent = _STATUSES.get(status)
    if intent is None and status == "requires_payment_method":
        # Back to waiting for a payment method: after a failed attempt when it names the error.
        intent = Intent.FAILED if stripe_intent.get("last_payment_error") else None
    if intent is None:
        payment, _ = await payments.load(order_id)
        return payment
    now = int(clock.now().timestamp())
    return await changed(payments, order_id, intent, stripe_intent, at=now, cause=f"at-{now}")
