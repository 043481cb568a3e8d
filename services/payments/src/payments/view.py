"""The payment as the API answers it."""

from __future__ import annotations

from typing import Any

from payments.model import Payment, Refund


def present(payment: Payment, *, client_secret: str | None = None) -> dict[str, Any]:
    """The payment; `client_secret` is given only on the internal routes (orders hands it to the
    customer's browser), never to staff."""
    body = {
        "order_id": payment.order_id,
        "payment_intent_id": payment.payment_intent_id,
        "amount": payment.amount,
        "currency": payment.currency,
        "status": str(payment.status),
        "paid_amount": payment.paid_amount,
        "refunded_amount": payment.refunded_amount,
        "refundable_amount": payment.refundable,
        "failure_reason": payment.reason if payment.status == "failed" else None,
        "refunds": [refund.to_json() for refund in payment.refunds],
        "disputes": [dispute.to_json() for dispute in payment.disputes],
    }
    if client_secret is not None:
        body["client_secret"] = client_secret
    return body


def created(payment: Payment, client_secret: str) -> dict[str, Any]:
    return {
        "order_id": payment.order_id,
        "payment_intent_id": payment.payment_intent_id,
        "client_secret": client_secret,
        "amount": payment.amount,
        "currency": payment.currency,
        "status": str(payment.status),
    }


def refunded(payment: Payment, refund: Refund) -> dict[str, Any]:
    return {
        "order_id": payment.order_id,
        "currency": payment.currency,
        **refund.to_json(),
        "payment_status": str(payment.status),
        "refunded_amount": payment.refunded_amount,
        "refundable_amount": payment.refundable,
    }
