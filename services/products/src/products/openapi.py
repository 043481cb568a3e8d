"""What the products API's OpenAPI document says of each handler: body, query, answers and headers."""

from __future__ import annotations

from typing import Any

import marshmallow
from marshmallow import fields

from products.catalog import schemas
from products.inventory import schemas as stock
from products.search import schemas as search
from shopkit.openapi import (
    ETAG,
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_KEY_REQUIRED,
    IF_MATCH,
    IF_NONE_MATCH,
    LOCATION,
    Operation,
)


def _out(**kwargs: Any) -> Any:
    """A field every answer carries (`None` allowed only where said)."""
    return {"required": True, **kwargs}


class MoneyOut(marshmallow.Schema):
    amount = fields.Integer(**_out())
    currency = fields.String(**_out())


class VariantOut(marshmallow.Schema):
    sku = fields.String(**_out())
    attributes = fields.Dict(**_out())
    price = fields.Nested(MoneyOut, **_out())
    compare_at_price = fields.Nested(MoneyOut, **_out(allow_none=True))
    weight_grams = fields.Integer(**_out(allow_none=True))
    track_stock = fields.Boolean(**_out())
    published = fields.Boolean(**_out())


class ProductOut(marshmallow.Schema):
    """Staff also see `updated_by` and unpublished variants."""

    id = fields.String(**_out())
    slug = fields.String(**_out())
    name = fields.String(**_out())
    description = fields.String(**_out())
    brand = fields.String(**_out(allow_none=True))
    category_id = fields.String(**_out(allow_none=True))
    category_path = fields.List(fields.String(), **_out())
    attributes = fields.Dict(**_out())
    images = fields.List(fields.String(), **_out())
    status = fields.String(**_out())
    variants = fields.List(fields.Nested(VariantOut), **_out())
    version = fields.Integer(**_out())
    created_at = fields.String(**_out())
    updated_at = fields.String(**_out())
    updated_by = fields.String(allow_none=True)


class ProductPageOut(marshmallow.Schema):
    items = fields.List(fields.Dict(), **_out())
    next_cursor = fields.String(**_out(allow_none=True))


class SearchOut(ProductPageOut):
    total = fields.Integer(**_out())
    facets = fields.Dict(**_out())


class SuggestionsOut(marshmallow.Schema):
    suggestions = fields.List(fields.Dict(), **_out())


class CategoryOut(marshmallow.Schema):
    id = fields.String(**_out())
    slug = fields.String(**_out())
    name = fields.String(**_out())
    parent_id = fields.String(**_out(allow_none=True))
    position = fields.Integer(**_out())
    archived = fields.Boolean(**_out())


class CategoryPageOut(marshmallow.Schema):
    items = fields.List(fields.Nested(CategoryOut), **_out())
    next_cursor = fields.String(**_out(allow_none=True))


class SkuOut(marshmallow.Schema):
    sku = fields.String(**_out())
    product_id = fields.String(**_out())
    title = fields.String(**_out())
    slug = fields.String(**_out())
    attributes = fields.Dict(**_out())
    price = fields.Nested(MoneyOut, **_out())
    compare_at_price = fields.Nested(MoneyOut, **_out(allow_none=True))
    track_stock = fields.Boolean(**_out())
    available = fields.Integer(**_out(allow_none=True))
    in_stock = fields.Boolean(**_out())
    version = fields.Integer(**_out())


class SkuLookupOut(marshmallow.Schema):
    items = fields.List(fields.Nested(SkuOut), **_out())
    missing = fields.List(fields.String(), **_out())


class StockLevelOut(marshmallow.Schema):
    """Untracked SKUs have no counts (`null`) and are always in stock."""

    sku = fields.String(**_out())
    tracked = fields.Boolean(**_out())
    on_hand = fields.Integer(**_out(allow_none=True))
    reserved = fields.Integer(**_out(allow_none=True))
    available = fields.Integer(**_out(allow_none=True))
    in_stock = fields.Boolean(**_out())


class MovementOut(marshmallow.Schema):
    seq = fields.Integer(**_out())
    type = fields.String(**_out())
    quantity = fields.Integer(**_out())
    on_hand_change = fields.Integer(**_out())
    reserved_change = fields.Integer(**_out())
    order_id = fields.String(**_out(allow_none=True))
    actor = fields.String(**_out(allow_none=True))
    reason = fields.String(**_out(allow_none=True))
    occurred_at = fields.String(**_out())
    on_hand = fields.Integer(**_out())
    reserved = fields.Integer(**_out())
    available = fields.Integer(**_out())


class MovementPageOut(marshmallow.Schema):
    items = fields.List(fields.Nested(MovementOut), **_out())
    next_cursor = fields.String(**_out(allow_none=True))


class ReservationLineOut(marshmallow.Schema):
    sku = fields.String(**_out())
    quantity = fields.Integer(**_out())
    tracked = fields.Boolean(**_out())


class ReservationOut(marshmallow.Schema):
    order_id = fields.String(**_out())
    state = fields.String(**_out())
    lines = fields.List(fields.Nested(ReservationLineOut), **_out())
    expires_at = fields.String(**_out())
    requested_at = fields.String(**_out())
    updated_at = fields.String(**_out())
    reason = fields.String()
    unavailable = fields.List(fields.Dict())


def _cached(response: type[marshmallow.Schema]) -> Operation:
    """A cacheable read: an ETag always, 304 to a matching If-None-Match."""
    return Operation(
        response=response,
        statuses=(200, 304),
        headers=(IF_NONE_MATCH,),
        response_headers=(ETAG,),
    )


# The `attr.<name>` filters are a family of parameters OpenAPI cannot name; the handler reads them.
_FACETS = ("attributes",)

OPERATIONS = {
    "list_categories": _cached(CategoryPageOut),
    "get_category": _cached(CategoryOut),
    "create_category": Operation(
        body=schemas.CategorySchema,
        response=CategoryOut,
        statuses=(201,),
        headers=(IDEMPOTENCY_KEY,),
        response_headers=(ETAG, LOCATION),
        errors=(409,),
    ),
    "update_category": Operation(
        body=schemas.CategorySchema(partial=True),
        response=CategoryOut,
        headers=(IF_MATCH,),
        response_headers=(ETAG,),
        errors=(409,),
    ),
    "lookup_skus": Operation(query=schemas.SkuLookupQuery, response=SkuLookupOut),
    "list_all": Operation(query=search.ProductListQuery(exclude=_FACETS), response=ProductPageOut),
    "get_product": _cached(ProductOut),
    "create_product": Operation(
        body=schemas.NewProductSchema,
        response=ProductOut,
        statuses=(201,),
        headers=(IDEMPOTENCY_KEY,),
        response_headers=(ETAG, LOCATION),
        errors=(404, 409),  # 404: the category_id names no category
    ),
    "update_product": Operation(
        body=schemas.ProductSchema(partial=True),
        response=ProductOut,
        headers=(IF_MATCH,),
        response_headers=(ETAG, LOCATION),
        errors=(409,),
    ),
    "archive_product": Operation(
        response=ProductOut, headers=(IF_MATCH,), response_headers=(ETAG, LOCATION)
    ),
    "search": Operation(query=search.SearchQuery(exclude=_FACETS), response=SearchOut),
    "autocomplete": Operation(query=search.AutocompleteQuery, response=SuggestionsOut),
    "stock_level": Operation(response=StockLevelOut),
    "stock_movements": Operation(query=stock.MovementQuery, response=MovementPageOut),
    "receive_stock": Operation(
        body=stock.ReceiptSchema,
        response=MovementOut,
        statuses=(201,),
        headers=(IDEMPOTENCY_KEY_REQUIRED,),
        errors=(409,),
    ),
    "adjust_stock": Operation(
        body=stock.AdjustmentSchema,
        response=MovementOut,
        statuses=(201,),
        headers=(IDEMPOTENCY_KEY_REQUIRED,),
        errors=(409,),
    ),
    "reserve_stock": Operation(
        body=stock.ReservationSchema,
        response=ReservationOut,
        statuses=(201, 200),
        response_headers=(LOCATION,),
        errors=(409,),
    ),
    "get_reservation": Operation(response=ReservationOut),
    "release_reservation": Operation(
        body=stock.ConclusionSchema, body_required=False, statuses=(204,), errors=(409,)
    ),
    "commit_reservation": Operation(
        body=stock.ConclusionSchema, body_required=False, statuses=(204,), errors=(409,)
    ),
}
