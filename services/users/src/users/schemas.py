"""Request bodies and queries of the users API (unknown fields, such as `roles`, are refused)."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from shopkit.addresses import PHONE, PostalAddressSchema
from shopkit.pagination import PageQuery
from shopkit.schemas import Boolean, Schema
from users.model import Role
from users.passwords import MAX_LENGTH, MIN_LENGTH, normalise


def Email(**kwargs: Any) -> fields.Email:
    return fields.Email(validate=validate.Length(max=254), **kwargs)


def Name(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(1, 100), **kwargs)


class Password(fields.String):
    """8 to 256 characters of any script or emoji, counted after NFC normalisation."""

    def __init__(self, **kwargs: Any) -> None:
        # The OpenAPI document states the length the check below enforces.
        kwargs.setdefault("metadata", {"minLength": MIN_LENGTH, "maxLength": MAX_LENGTH})
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        password = normalise(super()._deserialize(value, attr, data, **kwargs))
        if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
            raise ValidationError(f"must be {MIN_LENGTH} to {MAX_LENGTH} characters")
        return password


class RegisterSchema(Schema):
    email = Email(required=True)
    name = Name(required=True)
    password = Password(required=True)


class LoginSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(1, 254))
    # Any length is accepted for login so that the answer never depends on the password's shape.
    password = fields.String(required=True, validate=validate.Length(1, 1024))


class RefreshSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(1, 512))


class TokenSchema(Schema):
    token = fields.String(required=True, validate=validate.Length(1, 512))


class EmailSchema(Schema):
    email = Email(required=True)


class ResetConfirmSchema(Schema):
    token = fields.String(required=True, validate=validate.Length(1, 512))
    new_password = Password(required=True)


class ChangePasswordSchema(Schema):
    current_password = fields.String(required=True, validate=validate.Length(1, 1024))
    new_password = Password(required=True)


class ProfileSchema(Schema):
    name = Name()
    email = Email()
    phone = fields.String(allow_none=True, validate=PHONE)


class ClientCredentialsSchema(Schema):
    grant_type = fields.String(required=True, validate=validate.Equal("client_credentials"))
    client_id = fields.String(validate=validate.Length(1, 100))
    client_secret = fields.String(validate=validate.Length(1, 512))
    scope = fields.String()


class AddressSchema(PostalAddressSchema):
    default_shipping = Boolean()
    default_billing = Boolean()


class UserQuery(PageQuery):
    q = fields.String(validate=validate.Length(1, 100))
    role = fields.String(validate=validate.OneOf([r.value for r in Role]))


class AdminUserSchema(Schema):
    roles = fields.List(
        fields.String(validate=validate.OneOf([r.value for r in Role])),
        validate=validate.Length(1, 3),
    )
    disabled = Boolean()
    name = Name()
