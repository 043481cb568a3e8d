"""What the payments API's OpenAPI documents say of each handler: body, answers and headers."""

from __future__ import annotations

from typing import Any

import marshmallow
from marshmallow import fields

from payments import schemas
from shopkit.openapi import Header, Operation

STRIPE_SIGNATURE = Header(
    "Stripe-Signature",
    "Stripe's signature of the raw body: t=<timestamp>,v1=<HMAC-SHA256>; older than 300 s is refused",
    required=True,
)


def _out(**kwargs: Any) -> Any:
    """A field every answer carries (`None` allowed only where said)."""
    return {"required": True, **kwargs}


_STATUS = {
    "enum": [
        "awaiting",
        "processing",
        "paid",
        "partially_refunded",
        "refunded",
        "failed",
        "cancelled",
    ]
}


class CreatedOut(marshmallow.Schema):
    order_id = fields.String(**_out())
    payment_intent_id = fields.String(**_out())
    client_secret = fields.String(**_out())
    amount = fields.Integer(**_out())
    currency = fields.String(**_out())
    status = fields.String(**_out(metadata=_STATUS))


class RefundOut(marshmallow.Schema):
    refund_id = fields.String(**_out())
    amount = fields.Integer(**_out())
    reason = fields.String(**_out())
    status = fields.String(**_out(metadata={"enum": ["requested", "succeeded", "failed"]}))
    automatic = fields.Boolean(**_out())
    stripe_refund_id = fields.String(**_out(allow_none=True))


class DisputeOut(marshmallow.Schema):
    dispute_id = fields.String(**_out())
    amount = fields.Integer(**_out())
    currency = fields.String(**_out())
    reason = fields.String(**_out())


class PaymentOut(marshmallow.Schema):
    order_id = fields.String(**_out())
    payment_intent_id = fields.String(**_out())
    amount = fields.Integer(**_out())
    currency = fields.String(**_out())
    status = fields.String(**_out(metadata=_STATUS))
    paid_amount = fields.Integer(**_out())
    refunded_amount = fields.Integer(**_out())
    refundable_amount = fields.Integer(**_out())
    failure_reason = fields.String(**_out(allow_none=True))
    refunds = fields.List(fields.Nested(RefundOut), **_out())
    disputes = fields.List(fields.Nested(DisputeOut), **_out())


class InternalPaymentOut(PaymentOut):
    client_secret = fields.String(**_out())


class RefundedOut(RefundOut):
    order_id = fields.String(**_out())
    currency = fields.String(**_out())
    payment_status = fields.String(**_out(metadata=_STATUS))
    refunded_amount = fields.Integer(**_out())
    refundable_amount = fields.Integer(**_out())


class ReceivedOut(marshmallow.Schema):
    received = fields.Boolean(**_out())
    outcome = fields.String(
        **_out(metadata={"enum": ["handled", "duplicate", "ignored", "unknown"]})
    )


OPERATIONS = {
    "create_payment": Operation(
        body=schemas.CreatePaymentSchema,
        statuses=(201, 200),
        response=CreatedOut,
        errors=(409, 422),
    ),
    "internal_payment": Operation(response=InternalPaymentOut, errors=(404,)),
    "refund_payment": Operation(
        body=schemas.RefundSchema, statuses=(201, 200), response=RefundedOut, errors=(404, 409)
    ),
    "stripe_webhook": Operation(
        # The raw body is Stripe's event; it is verified, not validated against a schema.
        response=ReceivedOut,
        headers=(STRIPE_SIGNATURE,),
        errors=(400, 409),
    ),
    "payment_by_order": Operation(response=PaymentOut, errors=(404,)),
}
