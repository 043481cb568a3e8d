"""Stripe's events, from its webhooks or the reconciler's listing, handled once each.

Acting is idempotent by itself (each event appended has an id derived from its cause), and the
Stripe event's id is recorded in `stripe_events` after acting: a crash in between acts again, at
no cost, and a replay after that is answered at once. The order is found from the PaymentIntent:
`payment_intents` names its order, else its `metadata.order_id` (checked against the order's
record); a PaymentIntent of no order of ours is logged and ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from payments import intents, model, refunds
from payments.ledger import Payments, fresh
from payments.model import Dispute, Intent

log = logging.getLogger("payments.stripe_events")

INTENT_EVENTS = {
    "payment_intent.processing": Intent.PROCESSING,
    "payment_intent.succeeded": Intent.SUCCEEDED,
    "payment_intent.payment_failed": Intent.FAILED,
    "payment_intent.canceled": Intent.CANCELLED,
}
CHARGE_REFUNDED = "charge.refunded"
DISPUTE_CREATED = "charge.dispute.created"
# Refunds made outside the platform (Stripe's dashboard) carry this reason.
EXTERNAL_REFUND = "refunded at Stripe"


class Outcome:
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    UNKNOWN = "unknown"


def is_event(body: Any) -> bool:
    """Whether `body` has the shape of a Stripe event (its signature verified already)."""
    return (
        isinstance(body, dict)
        and isinstance(body.get("id"), str)
        and isinstance(body.get("type"), str)
        and isinstance(body.get("created"), int)
        and isinstance(body.get("data"), dict)
        and isinstance(body["data"].get("object"), dict)
    )


async def handle(payments: Payments, event: dict[str, Any]) -> str:
    """Act on one Stripe event unless it was handled already; the outcome."""
    event_id, event_type = event["id"], event["type"]
    if await payments.store.handled(event_id):
        outcome = Outcome.DUPLICATE
    else:
        outcome = await _act(payments, event)
        await payments.store.mark_handled(event_id, event_type, outcome)
    payments.metrics.stripe_events.labels(event_type, outcome).inc()
    return outcome


async def _act(payments: Payments, event: dict[str, Any]) -> str:
    event_type, found = event["type"], event["data"]["object"]
    kind = found.get("object")
    if kind == "payment_intent":
        intent = INTENT_EVENTS.get(event_type)
        if intent is None:
            return Outcome.IGNORED
        order_id = await order_of(payments, found.get("id"), found.get("metadata"))
        if order_id is None:
            log.info("%s for PaymentIntent %s of no order here", event_type, found.get("id"))
            return Outcome.UNKNOWN
        await intents.changed(
            payments, order_id, intent, found, at=int(event["created"]), cause=event["id"]
        )
        return Outcome.HANDLED
    if kind == "refund":
        return await refund_reported(payments, found)
    if kind == "charge" and event_type == CHARGE_REFUNDED:
        listed = (found.get("refunds") or {}).get("data") or []
        outcomes = [await refund_reported(payments, each) for each in listed]
        return Outcome.HANDLED if Outcome.HANDLED in outcomes else Outcome.IGNORED
    if kind == "dispute" and event_type == DISPUTE_CREATED:
        return await _disputed(payments, found)
    return Outcome.IGNORED


async def order_of(payments: Payments, payment_intent_id: Any, metadata: Any) -> str | None:
    """The order a PaymentIntent pays, if it is one of ours."""
    if not isinstance(payment_intent_id, str):
        return None
    order_id = await payments.store.order_of_intent(payment_intent_id)
    if order_id is not None:
        return order_id
    claimed = metadata.get("order_id") if isinstance(metadata, dict) else None
    if not isinstance(claimed, str):
        return None
    record = await payments.store.record(claimed)
    if record is None:
        return None
    payment, _ = await payments.load(claimed)
    if payment.exists:
        return claimed if payment.payment_intent_id == payment_intent_id else None
    # Stripe made it and the call that asked died before recording it: record it now.
    await payments.store.name_intent(payment_intent_id, claimed)
    await payments.decide(
        claimed, model.created(claimed, payment_intent_id, record.amount, record.currency)
    )
    return claimed


async def refund_reported(payments: Payments, found: dict[str, Any]) -> str:
    """A Stripe refund object (refund.*, charge.refund.updated, charge.refunded): its outcome."""
    stripe_id, metadata = found.get("id"), found.get("metadata") or {}
    if not isinstance(stripe_id, str):
        return Outcome.IGNORED
    named = await payments.store.refund_of(stripe_id)
    if named is not None:
        order_id, refund_id = named
    elif isinstance(metadata.get("order_id"), str) and isinstance(metadata.get("refund_id"), str):
        order_id, refund_id = metadata["order_id"], metadata["refund_id"]
    else:
        found_order = await order_of(payments, found.get("payment_intent"), None)
        if found_order is None:
            log.info("refund %s of no order here", stripe_id)
            return Outcome.UNKNOWN
        order_id, refund_id = found_order, stripe_id
    payment, _ = await payments.load(order_id)
    if not payment.exists or payment.payment_intent_id != found.get("payment_intent"):
        log.info("refund %s names order %s, whose payment it is not", stripe_id, order_id)
        return Outcome.UNKNOWN
    if payment.refund(refund_id) is None:
        # Made at Stripe without the platform: recorded as Stripe made it.
        await payments.decide(
            order_id,
            model.refund_requested(
                refund_id,
                int(found.get("amount") or 0),
                EXTERNAL_REFUND,
                stripe_refund_id=stripe_id,
            ),
            event_id=model.refund_event_id(order_id, refund_id, model.RefundStatus.REQUESTED),
        )
    await payments.store.name_refund(order_id, refund_id, stripe_id)
    await refunds.stripe_says(payments, order_id, refund_id, stripe_id, str(found.get("status")))
    return Outcome.HANDLED


async def _disputed(payments: Payments, found: dict[str, Any]) -> str:
    order_id = await order_of(payments, found.get("payment_intent"), None)
    if order_id is None:
        log.info("dispute %s of no order here", found.get("id"))
        return Outcome.UNKNOWN
    dispute = Dispute(
        dispute_id=str(found["id"]),
        amount=int(found.get("amount") or 0),
        currency=str(found.get("currency") or "").upper(),
        reason=str(found.get("reason") or "general"),
    )
    outcome = await payments.decide(order_id, model.disputed(dispute))
    if fresh(outcome):
        log.warning("dispute %s opened on order %s", dispute.dispute_id, order_id)
        payments.metrics.disputes.inc()
    return Outcome.HANDLED
