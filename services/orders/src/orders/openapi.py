"""What the orders API's OpenAPI document says of each handler: body, answers and headers."""

from __future__ import annotations

from typing import Any

import marshmallow
from marshmallow import fields

from orders import schemas
from orders.model import FulfilmentStatus, OrderStatus, PaymentStatus
from shopkit import headers
from shopkit.openapi import ETAG, IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_REQUIRED, Header, Operation

CART_TOKEN = Header(
    headers.CART_TOKEN,
    "A guest's cart token: a guest places and reads their orders with it",
    {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"},
)
LOCATION = Header(headers.LOCATION, "On 201: the new order")


def _out(**kwargs: Any) -> Any:
    return {"required": True, **kwargs}


def _enum(kind: Any, **kwargs: Any) -> Any:
    return _out(metadata={"enum": [member.value for member in kind]}, **kwargs)


class MoneyOut(marshmallow.Schema):
    amount = fields.Integer(**_out())
    currency = fields.String(**_out())


class LineOut(marshmallow.Schema):
    sku = fields.String(**_out())
    title = fields.String(**_out())
    quantity = fields.Integer(**_out())
    unit_price = fields.Nested(MoneyOut, **_out())
    total = fields.Nested(MoneyOut, **_out())
    tax = fields.Nested(MoneyOut, **_out())


class AddressOut(marshmallow.Schema):
    label = fields.String(allow_none=True)
    recipient = fields.String(**_out())
    line1 = fields.String(**_out())
    line2 = fields.String(allow_none=True)
    city = fields.String(**_out())
    region = fields.String(allow_none=True)
    postal_code = fields.String(**_out())
    country = fields.String(**_out())
    phone = fields.String(allow_none=True)


class ShippingOut(marshmallow.Schema):
    method = fields.String(**_out())
    name = fields.String(**_out())
    price = fields.Nested(MoneyOut, **_out())
    tax = fields.Nested(MoneyOut, **_out())
    address = fields.Nested(AddressOut, **_out())
    carrier = fields.String(**_out(allow_none=True))
    tracking_number = fields.String(**_out(allow_none=True))
    shipped_at = fields.String(**_out(allow_none=True))
    delivered_at = fields.String(**_out(allow_none=True))


class RefundOut(marshmallow.Schema):
    refund_id = fields.String(**_out())
    amount = fields.Nested(MoneyOut, **_out())
    reason = fields.String(**_out())
    status = fields.String(**_out(metadata={"enum": ["pending", "succeeded", "failed"]}))
    actor = fields.String(**_out())
    requested_at = fields.String(**_out())
    settled_at = fields.String(**_out(allow_none=True))


class DisputeOut(marshmallow.Schema):
    dispute_id = fields.String(**_out())
    amount = fields.Nested(MoneyOut, **_out())
    currency = fields.String(**_out())
    reason = fields.String(**_out())
    at = fields.String(**_out())


class NoteOut(marshmallow.Schema):
    text = fields.String(**_out())
    actor = fields.String(**_out())
    at = fields.String(**_out())


class PaymentOut(marshmallow.Schema):
    payment_intent_id = fields.String(**_out())
    client_secret = fields.String(
        **_out(
            allow_none=True,
            metadata={"description": "For the customer of a pending order: confirm with Stripe.js"},
        )
    )


class EndedOut(marshmallow.Schema):
    reason = fields.String(**_out())
    actor = fields.String(**_out())
    at = fields.String(**_out())


class TimelineOut(marshmallow.Schema):
    seq = fields.Integer(**_out())
    type = fields.String(**_out())
    at = fields.String(**_out())
    actor = fields.String(**_out(allow_none=True))


class OrderOut(marshmallow.Schema):
    id = fields.String(**_out())
    number = fields.String(**_out())
    version = fields.Integer(**_out())
    status = fields.String(**_enum(OrderStatus))
    payment_status = fields.String(**_enum(PaymentStatus))
    fulfilment_status = fields.String(**_enum(FulfilmentStatus))
    email = fields.String(**_out())
    customer_id = fields.String(**_out(allow_none=True))
    currency = fields.String(**_out())
    lines = fields.List(fields.Nested(LineOut), **_out())
    shipping = fields.Nested(ShippingOut, **_out())
    subtotal = fields.Nested(MoneyOut, **_out())
    shipping_total = fields.Nested(MoneyOut, **_out())
    tax_total = fields.Nested(MoneyOut, **_out())
    tax_inclusive = fields.Boolean(**_out())
    total = fields.Nested(MoneyOut, **_out())
    refunded = fields.Nested(MoneyOut, **_out())
    refunds = fields.List(fields.Nested(RefundOut), **_out())
    disputes = fields.List(fields.Nested(DisputeOut), **_out())
    note = fields.String(**_out(allow_none=True))
    staff_notes = fields.List(fields.Nested(NoteOut), **_out())
    payment = fields.Nested(PaymentOut, **_out())
    ended = fields.Nested(EndedOut, **_out(allow_none=True))
    allowed_actions = fields.List(
        fields.String(metadata={"enum": ["cancel", "ship", "deliver", "refund", "note"]}),
        **_out(),
    )
    timeline = fields.List(fields.Nested(TimelineOut), **_out())
    created_at = fields.String(**_out())
    updated_at = fields.String(**_out())
    expires_at = fields.String(**_out())


class OrderPageOut(marshmallow.Schema):
    items = fields.List(fields.Nested(OrderOut), **_out())
    next_cursor = fields.String(**_out(allow_none=True))


class ShippingMethodOut(marshmallow.Schema):
    id = fields.String(**_out())
    name = fields.String(**_out())
    price = fields.Nested(MoneyOut, **_out())


class ShippingMethodsOut(marshmallow.Schema):
    items = fields.List(fields.Nested(ShippingMethodOut), **_out())


def _move(
    body: type[marshmallow.Schema] | None = None, *, key: Header = IDEMPOTENCY_KEY
) -> Operation:
    return Operation(
        body=body,
        response=OrderOut,
        headers=(key,),
        response_headers=(ETAG,),
        errors=(404, 409),
    )


OPERATIONS = {
    "place_order": Operation(
        body=schemas.PlaceOrderSchema,
        statuses=(201, 200),
        response=OrderOut,
        headers=(IDEMPOTENCY_KEY_REQUIRED, CART_TOKEN),
        response_headers=(ETAG, LOCATION),
        errors=(404, 409),
    ),
    "list_orders": Operation(query=schemas.OrderQuery, response=OrderPageOut),
    "shipping_methods": Operation(query=schemas.ShippingQuery, response=ShippingMethodsOut),
    "get_order": Operation(
        response=OrderOut, headers=(CART_TOKEN,), response_headers=(ETAG,), errors=(404,)
    ),
    "cancel_order": Operation(
        body=schemas.CancelSchema,
        body_required=False,
        response=OrderOut,
        headers=(IDEMPOTENCY_KEY, CART_TOKEN),
        response_headers=(ETAG,),
        errors=(404, 409),
    ),
    "ship_order": _move(schemas.ShipSchema),
    "deliver_order": _move(),
    "refund_order": Operation(
        body=schemas.RefundSchema,
        statuses=(201,),
        response=OrderOut,
        headers=(IDEMPOTENCY_KEY_REQUIRED,),
        errors=(404, 409),
    ),
    "add_note": Operation(
        body=schemas.NoteSchema,
        statuses=(201,),
        response=OrderOut,
        headers=(IDEMPOTENCY_KEY,),
        errors=(404,),
    ),
}
