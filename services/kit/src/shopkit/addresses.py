"""A postal address as every service accepts it (docs/architecture.md, "Contract details")."""

from __future__ import annotations

from marshmallow import fields, validate

from shopkit.schemas import Schema

__all__ = ["PHONE", "PostalAddressSchema"]

PHONE = validate.Regexp(r"^\+[1-9][0-9]{6,14}\Z", error="use E.164, for example +4930123456")


class PostalAddressSchema(Schema):
    """Loads to a plain dict: users keeps it in an address book, orders copies it into an order."""

    label = fields.String(allow_none=True, validate=validate.Length(max=50))
    recipient = fields.String(required=True, validate=validate.Length(1, 100))
    line1 = fields.String(required=True, validate=validate.Length(1, 200))
    line2 = fields.String(allow_none=True, validate=validate.Length(max=200))
    city = fields.String(required=True, validate=validate.Length(1, 100))
    region = fields.String(allow_none=True, validate=validate.Length(max=100))
    postal_code = fields.String(required=True, validate=validate.Length(1, 20))
    country = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Z]{2}\Z", error="use an ISO 3166-1 alpha-2 code"),
    )
    phone = fields.String(allow_none=True, validate=PHONE)
