"""Request bodies and queries of the catalog API (ids, stock and audit fields are refused as unknown)."""

from __future__ import annotations

import math
from typing import Any

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from products.model import AttributeValue, Variant
from shopkit.money import MoneySchema
from shopkit.pagination import PageQuery
from shopkit.schemas import JSONSCHEMA, Boolean, Schema, WholeNumber

SLUG = validate.Regexp(
    r"^[a-z0-9]+(?:-[a-z0-9]+)*\Z", error="lowercase letters, digits and single dashes"
)
SKU = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z", error="letters, digits, dot, dash, underscore"
)
ATTRIBUTE_NAME = validate.Regexp(
    r"^[a-z][a-z0-9_]{0,39}\Z", error="lowercase snake_case, at most 40"
)
# What AttributeValueField accepts, for the OpenAPI document.
ATTRIBUTE_VALUE = {
    "anyOf": [
        {"type": "string", "minLength": 1, "maxLength": 200},
        {"type": "number", "minimum": -(2**53), "maximum": 2**53},
        {"type": "boolean"},
    ]
}


# Image URLs: http(s), a host name with a TLD, an optional plain path. The document states this
# pattern and the service enforces it beside the URL check, so both agree on every string.
IMAGE_URL = validate.Regexp(
    r"^https?://([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}(/[A-Za-z0-9._~%/-]*)?\Z",
    error="an http(s) URL with a host name and a plain path",
)


class AttributeValueField(fields.Field):
    """A typed attribute value: text, number or yes/no (never a list or an object)."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> AttributeValue:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and math.isfinite(value) and abs(value) <= 2**53:
            return value
        if isinstance(value, str) and 0 < len(value) <= 200:
            return value
        raise ValidationError(
            "must be text (1 to 200 characters), a number up to 2**53, or true/false"
        )


def Attributes() -> fields.Dict:
    return fields.Dict(
        keys=fields.String(validate=ATTRIBUTE_NAME),
        values=AttributeValueField(),
        validate=validate.Length(max=30),
        load_default=dict,
        metadata={
            JSONSCHEMA: {
                "propertyNames": {"pattern": "^[a-z][a-z0-9_]{0,39}$"},
                "maxProperties": 30,
                "additionalProperties": ATTRIBUTE_VALUE,
            }
        },
    )


class VariantSchema(Schema):
    sku = fields.String(required=True, validate=SKU)
    price = fields.Nested(MoneySchema, required=True)
    compare_at_price = fields.Nested(MoneySchema, allow_none=True, load_default=None)
    attributes = Attributes()
    weight_grams = WholeNumber(
        allow_none=True, load_default=None, validate=validate.Range(0, 10**7)
    )
    track_stock = Boolean(load_default=True)
    published = Boolean(load_default=True)

    @validates_schema
    def compare_at_is_higher(self, data: dict[str, Any], **_: Any) -> None:
        compare, price = data.get("compare_at_price"), data.get("price")
        if compare is None or price is None:
            return
        if compare.currency != price.currency or compare.amount <= price.amount:
            raise ValidationError(
                "must be higher than the price, in the same currency", "compare_at_price"
            )

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Variant:
        return Variant(**data)


class ProductSchema(Schema):
    slug = fields.String(required=True, validate=[validate.Length(1, 120), SLUG])
    name = fields.String(required=True, validate=validate.Length(1, 200))
    description = fields.String(load_default="", validate=validate.Length(max=10_000))
    brand = fields.String(allow_none=True, load_default=None, validate=validate.Length(1, 100))
    category_id = fields.String(allow_none=True, load_default=None, validate=validate.Length(1, 64))
    attributes = Attributes()
    images = fields.List(
        fields.URL(schemes={"https", "http"}, validate=IMAGE_URL),
        load_default=list,
        validate=validate.Length(max=20),
    )
    status = fields.String(
        load_default="draft", validate=validate.OneOf(["draft", "published", "archived"])
    )
    variants = fields.List(
        fields.Nested(VariantSchema), required=True, validate=validate.Length(1, 100)
    )

    @validates_schema
    def variants_are_consistent(self, data: dict[str, Any], **_: Any) -> None:
        variants: list[Variant] = data.get("variants") or []
        skus = [v.sku for v in variants]
        if len(set(skus)) != len(skus):
            raise ValidationError("each variant needs its own SKU", "variants")
        if len({v.price.currency for v in variants}) > 1:
            raise ValidationError("all variants of a product share one currency", "variants")


class NewProductSchema(ProductSchema):
    """A product is created as a draft or published, never archived."""

    status = fields.String(load_default="draft", validate=validate.OneOf(["draft", "published"]))


class CategorySchema(Schema):
    slug = fields.String(required=True, validate=[validate.Length(1, 120), SLUG])
    name = fields.String(required=True, validate=validate.Length(1, 100))
    parent_id = fields.String(allow_none=True, load_default=None, validate=validate.Length(1, 64))
    position = WholeNumber(load_default=0, validate=validate.Range(0, 10_000))
    archived = Boolean()


class StaffListQuery(PageQuery):
    status = fields.String(validate=validate.OneOf(["draft", "published", "archived"]))


class CommaList(fields.Field):
    """`?skus=A,B,C`: one parameter, comma-separated, each item validated."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        if not isinstance(value, str):
            raise ValidationError("give SKUs separated by commas")
        # Spaces around an item are allowed (the document's pattern says so), nothing else.
        items = [item.strip(" ") for item in value.split(",")]
        if not 1 <= len(items) <= 100:
            raise ValidationError("give 1 to 100 SKUs")
        for item in items:
            SKU(item)
        return list(dict.fromkeys(items))


# One SKU of the list, as the document states it (the SKU validator above enforces the same shape).
_SKU_ITEM = " *[A-Za-z0-9][A-Za-z0-9._-]{0,63} *"


class SkuLookupQuery(Schema):
    skus = CommaList(
        required=True,
        metadata={"type": "string", "pattern": f"^{_SKU_ITEM}(,{_SKU_ITEM}){{0,99}}$"},
    )
