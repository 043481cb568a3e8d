"""Query-string validation for search, the customer product list and autocomplete: 422, never 500.

A facet may be selected with several values by repeating its parameter (`brand=A&brand=B`);
attribute filters are `attr.<name>=<value>`; anything else unknown is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, post_load, validate, validates_schema
from multidict import MultiMapping

from products.search.query import SORT_VALUE_TYPES, Filters, SearchParams, Sort
from shopkit.pagination import MAX_LIMIT, CursorField
from shopkit.schemas import Schema
from shopkit.schemas import validate as check

ATTR_PREFIX = "attr."
ATTRIBUTES_KEY = "attr.*"
MAX_VALUES = 20
MAX_ATTRIBUTES = 20
LIST_SORTS = [Sort.NEWEST, Sort.PRICE, Sort.PRICE_DESC, Sort.NAME]


class _Filtering(Schema):
    category = fields.List(
        fields.String(validate=validate.Length(1, 100)), validate=validate.Length(max=MAX_VALUES)
    )
    brand = fields.List(
        fields.String(validate=validate.Length(1, 200)), validate=validate.Length(max=MAX_VALUES)
    )
    # Filled from the `attr.<name>` parameters (one literally named `attributes` is unknown).
    attributes = fields.Dict(
        data_key=ATTRIBUTES_KEY,
        keys=fields.String(validate=validate.Length(1, 100)),
        values=fields.List(
            fields.String(validate=validate.Length(1, 200)), validate=validate.Length(1, MAX_VALUES)
        ),
        validate=validate.Length(max=MAX_ATTRIBUTES),
    )
    min_price = fields.Integer(strict=False, validate=validate.Range(0, 10**12))
    max_price = fields.Integer(strict=False, validate=validate.Range(0, 10**12))
    in_stock = fields.Boolean()
    limit = fields.Integer(load_default=20, validate=validate.Range(1, MAX_LIMIT))
    cursor = CursorField(load_default=None)

    @validates_schema
    def _price_order(self, data: dict[str, Any], **_: Any) -> None:
        low, high = data.get("min_price"), data.get("max_price")
        if low is not None and high is not None and low > high:
            raise ValidationError("must not be above max_price", "min_price")

    def _params(self, data: dict[str, Any], q: str | None, sort: Sort) -> SearchParams:
        filters = Filters(
            categories=tuple(data.get("category", ())),
            brands=tuple(data.get("brand", ())),
            attributes=tuple(
                (name, tuple(values)) for name, values in data.get("attributes", {}).items()
            ),
            min_price=data.get("min_price"),
            max_price=data.get("max_price"),
            in_stock=data.get("in_stock"),
        )
        return SearchParams(
            q=q, filters=filters, sort=sort, limit=data["limit"], after=_after(data["cursor"], sort)
        )


class SearchQuery(_Filtering):
    q = fields.String(validate=validate.Length(max=200))
    sort = fields.String(validate=validate.OneOf([s.value for s in Sort]))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> SearchParams:
        q = (data.get("q") or "").strip() or None
        default = Sort.RELEVANCE if q else Sort.NEWEST
        sort = Sort(data.get("sort", default))
        # Without words every score is equal: relevance means newest first.
        return self._params(data, q, Sort.NEWEST if sort is Sort.RELEVANCE and not q else sort)


class ProductListQuery(_Filtering):
    sort = fields.String(
        load_default=Sort.NEWEST.value, validate=validate.OneOf([s.value for s in LIST_SORTS])
    )

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> SearchParams:
        return self._params(data, None, Sort(data["sort"]))


class AutocompleteQuery(Schema):
    q = fields.String(required=True, validate=validate.Length(1, 100))
    limit = fields.Integer(load_default=10, validate=validate.Range(1, 10))


def _after(cursor: Any, sort: Sort) -> tuple[Any, ...] | None:
    """The search_after values of a cursor, checked against the sort they will be used with."""
    if cursor is None:
        return None
    after = cursor.get("after") if isinstance(cursor, dict) else None
    if (
        not isinstance(cursor, dict)
        or cursor.get("sort") != sort.value
        or not isinstance(after, list)
        or len(after) != 2
        or isinstance(after[0], bool)
        or not isinstance(after[0], SORT_VALUE_TYPES[sort])
        or not isinstance(after[1], str)
    ):
        raise ValidationError("not a cursor for this sort", "cursor")
    return tuple(after)


def _as_data(query: MultiMapping[str] | Mapping[str, str], lists: set[str]) -> dict[str, Any]:
    """The query string as schema input: lists for facets, repeated scalars left as lists (invalid)."""
    getall = query.getall if isinstance(query, MultiMapping) else (lambda key: [query[key]])
    data: dict[str, Any] = {}
    attributes: dict[str, list[str]] = {}
    for key in dict.fromkeys(query):
        values = getall(key)
        if key.startswith(ATTR_PREFIX):
            attributes[key[len(ATTR_PREFIX) :]] = values
        elif key in lists:
            data[key] = values
        else:
            data[key] = values[0] if len(values) == 1 else values
    if attributes:
        data[ATTRIBUTES_KEY] = attributes
    return data


def search_params(query: MultiMapping[str] | Mapping[str, str]) -> SearchParams:
    params: SearchParams = check(SearchQuery(), _as_data(query, {"category", "brand"}))
    return params


def list_params(query: MultiMapping[str] | Mapping[str, str]) -> SearchParams:
    params: SearchParams = check(ProductListQuery(), _as_data(query, {"category", "brand"}))
    return params


def autocomplete_params(query: MultiMapping[str] | Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = check(AutocompleteQuery(), _as_data(query, set()))
    return found
