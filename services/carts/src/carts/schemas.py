"""What the carts API accepts."""

from __future__ import annotations

from marshmallow import fields, validate

from carts.model import MAX_QUANTITY
from shopkit.money import MoneySchema
from shopkit.schemas import Schema, WholeNumber

SKU = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z", error="letters, digits, dot, dash, underscore"
)
QUANTITY = validate.Range(min=1, max=MAX_QUANTITY)
COUNTRY = validate.Regexp(r"^[A-Z]{2}\Z", error="an ISO 3166-1 alpha-2 code, such as DE")


class AddLineSchema(Schema):
    sku = fields.String(required=True, validate=SKU)
    quantity = WholeNumber(required=True, validate=QUANTITY)
    unit_price = fields.Nested(
        MoneySchema,
        load_default=None,
        metadata={
            "description": "Ignored: every line is priced from the catalog. Accepted so that a "
            "client echoing a line it read is not refused."
        },
    )


class ChangeLineSchema(Schema):
    quantity = WholeNumber(required=True, validate=QUANTITY)


class DetailsSchema(Schema):
    """Any of the three; null clears one, and one left out stays as it is."""

    note = fields.String(allow_none=True, validate=validate.Length(max=500))
    email = fields.Email(allow_none=True, validate=validate.Length(max=254))
    ship_to_country = fields.String(allow_none=True, validate=COUNTRY)


class HoldSchema(Schema):
    order_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
