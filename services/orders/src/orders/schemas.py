"""What the orders API accepts. Unknown fields are refused: a price, total or status sent by a
client is never read, and saying so beats ignoring it silently."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from orders.checkout import OrderRequest
from orders.model import FulfilmentStatus, OrderStatus, PaymentStatus
from shopkit import clock
from shopkit.addresses import PostalAddressSchema
from shopkit.money import MAX_AMOUNT
from shopkit.pagination import MAX_LIMIT, CursorField
from shopkit.schemas import Schema, WholeNumber

ID = validate.Regexp(r"^[A-Za-z0-9_-]{1,64}\Z", error="letters, digits, dash, underscore")
REASON = validate.Length(1, 500)


class PlaceOrderSchema(Schema):
    shipping_method = fields.String(required=True, validate=validate.Length(1, 50))
    shipping_address = fields.Nested(PostalAddressSchema, load_default=None)
    address_id = fields.String(load_default=None, validate=ID)
    email = fields.Email(load_default=None, validate=validate.Length(max=254))
    note = fields.String(load_default=None, validate=validate.Length(max=500))

    @validates_schema
    def one_address(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("shipping_address") is None) == (data.get("address_id") is None):
            raise ValidationError(
                "give either shipping_address or address_id", field_name="shipping_address"
            )

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> OrderRequest:
        return OrderRequest(**data)


COUNTRY = validate.Regexp(r"^[A-Z]{2}\Z", error="an ISO 3166-1 alpha-2 code, such as DE")
CURRENCY = validate.Regexp(r"^[A-Z]{3}\Z", error="an ISO 4217 code, such as EUR")
# Staff lists walk days: a range longer than this is refused rather than walked.
MAX_DAYS = 366
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
# Days a listing may name: orders exist within these, and the walk never leaves the calendar.
DAYS = validate.Range(min=date(2000, 1, 1), max=date(2999, 12, 31))
FROM_RULE = (
    f"staff: the first day (UTC); not after `to`, at most {MAX_DAYS} days before it (or today)"
)


class ShippingQuery(Schema):
    country = fields.String(required=True, validate=COUNTRY)
    currency = fields.String(required=True, validate=CURRENCY)
    subtotal = fields.Integer(
        strict=False,
        load_default=0,
        validate=validate.Range(0, MAX_AMOUNT),
        metadata={"description": "minor units, for free-shipping thresholds"},
    )


class OrderCursor(CursorField):
    """Where a page of orders ended: the last order's placing time (RFC 3339) and id."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        position = super()._deserialize(value, attr, data, **kwargs)
        if not (
            isinstance(position, list)
            and len(position) == 2
            and all(isinstance(part, str) for part in position)
        ):
            raise ValidationError("not a cursor this list gave out")
        if RFC3339.fullmatch(position[0]) is None:
            raise ValidationError("not a cursor this list gave out")
        try:
            datetime.fromisoformat(position[0])
        except ValueError:
            raise ValidationError("not a cursor this list gave out") from None
        return position


class OrderQuery(Schema):
    """A page of orders, newest first; staff filter on any of these (a customer's list is
    always their own)."""

    limit = fields.Integer(load_default=20, validate=validate.Range(1, MAX_LIMIT))
    cursor = OrderCursor(list, load_default=None)
    status = fields.String(validate=validate.OneOf([s.value for s in OrderStatus]))
    payment_status = fields.String(validate=validate.OneOf([s.value for s in PaymentStatus]))
    fulfilment_status = fields.String(validate=validate.OneOf([s.value for s in FulfilmentStatus]))
    email = fields.Email(validate=validate.Length(max=254))
    number = fields.String(validate=validate.Regexp(r"^SO-[A-Z2-7]{5}-[A-Z2-7]{5}\Z"))
    placed_from = fields.Date(data_key="from", validate=DAYS, metadata={"description": FROM_RULE})
    placed_to = fields.Date(
        data_key="to",
        validate=DAYS,
        metadata={"description": "staff: the last day (UTC); today by default"},
    )

    @validates_schema
    def ordered_range(self, data: dict[str, Any], **_: Any) -> None:
        start: date | None = data.get("placed_from")
        end: date | None = data.get("placed_to")
        if start is not None and end is not None and start > end:
            raise ValidationError("`from` must not be after `to`", field_name="from")
        if start is not None and (end or clock.now().date()) - start > timedelta(days=MAX_DAYS):
            raise ValidationError(f"a range spans at most {MAX_DAYS} days", field_name="from")


class CancelSchema(Schema):
    reason = fields.String(load_default=None, validate=REASON)


class ShipSchema(Schema):
    carrier = fields.String(required=True, validate=validate.Length(1, 100))
    tracking_number = fields.String(required=True, validate=validate.Length(1, 100))


class RefundSchema(Schema):
    amount = WholeNumber(required=True, validate=validate.Range(1, MAX_AMOUNT))
    reason = fields.String(required=True, validate=REASON)


class NoteSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(1, 2000))
