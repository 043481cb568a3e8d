"""What the payments API accepts."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, post_load, validate

from shopkit.schemas import Schema, WholeNumber

# Ids end up in Stripe idempotency keys (at most 255 characters) and in stream ids.
ID_PATTERN = r"^[A-Za-z0-9_.-]{1,100}\Z"
# Stripe charges at most 8 digits of minor units.
MAX_AMOUNT = 99_999_999


class CreatePaymentSchema(Schema):
    order_id = fields.String(required=True, validate=validate.Regexp(ID_PATTERN))
    amount = WholeNumber(required=True, validate=validate.Range(min=1, max=MAX_AMOUNT))
    currency = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z]{3}\Z"),
        metadata={"description": "ISO 4217 code"},
    )
    email = fields.Email(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=254),
        metadata={"description": "Stripe mails its receipt here"},
    )

    @post_load
    def _upper(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {**data, "currency": data["currency"].upper()}


class RefundSchema(Schema):
    refund_id = fields.String(
        required=True,
        validate=validate.Regexp(ID_PATTERN),
        metadata={"description": "The caller's id for this refund: a repeat answers the same"},
    )
    amount = WholeNumber(required=True, validate=validate.Range(min=1, max=MAX_AMOUNT))
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))
