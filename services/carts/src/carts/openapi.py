"""What the carts API's OpenAPI document says of each handler: body, answers and headers."""

from __future__ import annotations

from typing import Any

import marshmallow
from marshmallow import fields

from carts import schemas
from shopkit import headers
from shopkit.openapi import ETAG, IDEMPOTENCY_KEY, Header, Operation

CART_TOKEN = Header(
    headers.CART_TOKEN,
    "A guest's cart: the token the write that created it answered",
    {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"},
)
NEW_CART_TOKEN = Header(headers.CART_TOKEN, "On 201: the new guest cart's token; keep it")
IF_MATCH = Header(
    headers.IF_MATCH,
    'Optional: the ETag read before writing, such as "v7"; 412 once stale',
    {"type": "string", "pattern": '^(W/)?"v[0-9]{1,15}"$'},
)


def _out(**kwargs: Any) -> Any:
    """A field every answer carries (`None` allowed only where said)."""
    return {"required": True, **kwargs}


class MoneyOut(marshmallow.Schema):
    amount = fields.Integer(**_out())
    currency = fields.String(**_out())


class PriceChangeOut(marshmallow.Schema):
    from_ = fields.Nested(MoneyOut, data_key="from", **_out())
    to = fields.Nested(MoneyOut, **_out())


class ProblemOut(marshmallow.Schema):
    code = fields.String(
        **_out(
            metadata={
                "enum": ["unavailable", "out_of_stock", "insufficient_stock", "currency_mismatch"]
            }
        )
    )
    detail = fields.String(**_out())
    available = fields.Integer()


class CartProblemOut(ProblemOut):
    sku = fields.String(**_out())


class LineOut(marshmallow.Schema):
    sku = fields.String(**_out())
    title = fields.String(**_out())
    quantity = fields.Integer(**_out())
    unit_price = fields.Nested(MoneyOut, **_out())
    line_total = fields.Nested(MoneyOut, **_out())
    price_changed = fields.Nested(PriceChangeOut, **_out(allow_none=True))
    price_stale = fields.Boolean(**_out())
    available = fields.Integer(**_out(allow_none=True))
    problems = fields.List(fields.Nested(ProblemOut), **_out())
    added_at = fields.String(**_out())


class CheckoutOut(marshmallow.Schema):
    order_id = fields.String(**_out())
    expires_at = fields.String(**_out())


class CartOut(marshmallow.Schema):
    id = fields.String(**_out(allow_none=True))
    version = fields.Integer(**_out())
    currency = fields.String(**_out())
    lines = fields.List(fields.Nested(LineOut), **_out())
    item_count = fields.Integer(**_out())
    subtotal = fields.Nested(MoneyOut, **_out())
    adjustments = fields.List(fields.Dict(), **_out())
    total = fields.Nested(MoneyOut, **_out())
    note = fields.String(**_out(allow_none=True))
    email = fields.String(**_out(allow_none=True))
    ship_to_country = fields.String(**_out(allow_none=True))
    problems = fields.List(fields.Nested(CartProblemOut), **_out())
    checkout_ready = fields.Boolean(**_out())
    prices_stale = fields.Boolean(**_out())
    checkout = fields.Nested(CheckoutOut, **_out(allow_none=True))
    created_at = fields.String(**_out(allow_none=True))
    updated_at = fields.String(**_out(allow_none=True))


class SkuChangeOut(marshmallow.Schema):
    sku = fields.String(**_out())
    quantity = fields.Integer(**_out())


class CapOut(marshmallow.Schema):
    sku = fields.String(**_out())
    requested = fields.Integer(**_out())
    kept = fields.Integer(**_out())


class DropOut(marshmallow.Schema):
    sku = fields.String(**_out())
    quantity = fields.Integer(**_out())
    reason = fields.String(**_out(metadata={"enum": ["currency", "line_limit"]}))


class MergeReportOut(marshmallow.Schema):
    added = fields.List(fields.Nested(SkuChangeOut), **_out())
    capped = fields.List(fields.Nested(CapOut), **_out())
    dropped = fields.List(fields.Nested(DropOut), **_out())


class MergedCartOut(CartOut):
    merge = fields.Nested(MergeReportOut, **_out())


def _write(body: type[marshmallow.Schema] | None = None) -> Operation:
    """A change to the caller's cart: answers the cart after it."""
    return Operation(
        body=body,
        response=CartOut,
        headers=(CART_TOKEN, IF_MATCH, IDEMPOTENCY_KEY),
        response_headers=(ETAG,),
        errors=(404, 409, 412),
    )


OPERATIONS = {
    "current_cart": Operation(
        response=CartOut, headers=(CART_TOKEN,), response_headers=(ETAG,), errors=(404,)
    ),
    "add_line": Operation(
        body=schemas.AddLineSchema,
        statuses=(200, 201),
        response=CartOut,
        headers=(CART_TOKEN, IF_MATCH, IDEMPOTENCY_KEY),
        response_headers=(ETAG, NEW_CART_TOKEN),
        errors=(404, 409, 412, 429),
    ),
    "change_line": _write(schemas.ChangeLineSchema),
    "remove_line": _write(),
    "empty_cart": _write(),
    "describe_cart": Operation(
        body=schemas.DetailsSchema,
        statuses=(200, 201),
        response=CartOut,
        headers=(CART_TOKEN, IF_MATCH, IDEMPOTENCY_KEY),
        response_headers=(ETAG, NEW_CART_TOKEN),
        errors=(404, 409, 412, 429),
    ),
    "merge_cart": Operation(
        response=MergedCartOut,
        headers=(
            Header(headers.CART_TOKEN, "The guest cart to merge", CART_TOKEN.schema, required=True),
        ),
        response_headers=(ETAG,),
        errors=(404, 409),
    ),
    "cart_by_id": Operation(response=CartOut, response_headers=(ETAG,), errors=(404,)),
    "checkout_cart": Operation(
        body=schemas.HoldSchema,
        statuses=(200, 201),
        response=CartOut,
        response_headers=(ETAG,),
        errors=(404, 409),
    ),
    "release_cart": Operation(statuses=(204,), errors=(404,)),
}
