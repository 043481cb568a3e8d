"""What the users API's OpenAPI document says of each handler: body, query, answers and headers."""

from __future__ import annotations

from typing import Any

import marshmallow
from marshmallow import fields

from shopkit import headers
from shopkit.openapi import IDEMPOTENCY_KEY, LOCATION, Header, Operation
from users import schemas
from users.links import Purpose


def _out(**kwargs: Any) -> Any:
    """A field every answer carries (`None` allowed only where said)."""
    return {"required": True, **kwargs}


class UserOut(marshmallow.Schema):
    id = fields.String(**_out())
    email = fields.String(**_out())
    name = fields.String(**_out())
    phone = fields.String(**_out(allow_none=True))
    roles = fields.List(fields.String(), **_out())
    email_verified = fields.Boolean(**_out())
    pending_email = fields.String(**_out(allow_none=True))
    disabled = fields.Boolean(**_out())
    default_shipping_address_id = fields.String(**_out(allow_none=True))
    default_billing_address_id = fields.String(**_out(allow_none=True))
    created_at = fields.String(**_out())
    updated_at = fields.String(**_out())


class UserPageOut(marshmallow.Schema):
    items = fields.List(fields.Nested(UserOut), **_out())
    next_cursor = fields.String(**_out(allow_none=True))


class AddressOut(marshmallow.Schema):
    id = fields.String(**_out())
    label = fields.String(**_out(allow_none=True))
    recipient = fields.String(**_out())
    line1 = fields.String(**_out())
    line2 = fields.String(**_out(allow_none=True))
    city = fields.String(**_out())
    region = fields.String(**_out(allow_none=True))
    postal_code = fields.String(**_out())
    country = fields.String(**_out())
    phone = fields.String(**_out(allow_none=True))
    is_default_shipping = fields.Boolean(**_out())
    is_default_billing = fields.Boolean(**_out())
    created_at = fields.String(**_out())


class AddressPageOut(marshmallow.Schema):
    items = fields.List(fields.Nested(AddressOut), **_out())
    next_cursor = fields.String(**_out(allow_none=True))


class SessionOut(marshmallow.Schema):
    id = fields.String(**_out())
    created_at = fields.String(**_out())
    last_used_at = fields.String(**_out())
    expires_at = fields.String(**_out())
    user_agent = fields.String(**_out(allow_none=True))
    ip = fields.String(**_out(allow_none=True))
    current = fields.Boolean(**_out())


class SessionPageOut(marshmallow.Schema):
    items = fields.List(fields.Nested(SessionOut), **_out())
    next_cursor = fields.String(**_out(allow_none=True))


class TokenPairOut(marshmallow.Schema):
    access_token = fields.String(**_out())
    refresh_token = fields.String(**_out())
    token_type = fields.String(**_out())
    expires_in = fields.Integer(**_out())


class ClientTokenOut(marshmallow.Schema):
    access_token = fields.String(**_out())
    token_type = fields.String(**_out())
    expires_in = fields.Integer(**_out())


class StatusOut(marshmallow.Schema):
    status = fields.String(**_out())


class LinkOut(marshmallow.Schema):
    purpose = fields.String(
        validate=marshmallow.validate.OneOf([purpose.value for purpose in Purpose]), **_out()
    )
    token = fields.String(**_out())
    expires_at = fields.String(**_out())


NO_STORE = Header(headers.CACHE_CONTROL, "no-store: the answer holds a secret no cache may keep")

JWKS = {
    "type": "object",
    "required": ["keys"],
    "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
}

OPERATIONS = {
    "register": Operation(
        body=schemas.RegisterSchema,
        response=UserOut,
        statuses=(201,),
        headers=(IDEMPOTENCY_KEY,),
        response_headers=(LOCATION,),
        errors=(409,),
    ),
    "login": Operation(body=schemas.LoginSchema, response=TokenPairOut, errors=(401, 403, 429)),
    "refresh": Operation(body=schemas.RefreshSchema, response=TokenPairOut, errors=(401, 429)),
    "logout": Operation(body=schemas.RefreshSchema, statuses=(204,), errors=(401, 429)),
    "verify_email": Operation(body=schemas.TokenSchema, response=UserOut, errors=(409, 429)),
    "password_reset": Operation(
        body=schemas.EmailSchema, response=StatusOut, statuses=(202,), errors=(429,)
    ),
    "password_reset_confirm": Operation(
        body=schemas.ResetConfirmSchema, statuses=(204,), errors=(429,)
    ),
    "jwks": Operation(response=JWKS),
    "client_token": Operation(
        body=schemas.ClientCredentialsSchema, response=ClientTokenOut, errors=(401, 429)
    ),
    "me": Operation(response=UserOut, errors=(403,)),
    "update_me": Operation(body=schemas.ProfileSchema, response=UserOut, errors=(403, 409)),
    "change_password": Operation(
        body=schemas.ChangePasswordSchema, statuses=(204,), errors=(403, 429)
    ),
    "sessions": Operation(response=SessionPageOut, errors=(403,)),
    "end_session": Operation(statuses=(204,), errors=(403,)),
    "list_addresses": Operation(response=AddressPageOut, errors=(403,)),
    "add_address": Operation(
        body=schemas.AddressSchema,
        response=AddressOut,
        statuses=(201,),
        headers=(IDEMPOTENCY_KEY,),
        response_headers=(LOCATION,),
        errors=(403, 409),
    ),
    "get_address": Operation(response=AddressOut, errors=(403,)),
    "update_address": Operation(
        body=schemas.AddressSchema(partial=True), response=AddressOut, errors=(403, 409)
    ),
    "delete_address": Operation(statuses=(204,), errors=(403,)),
    "list_users": Operation(query=schemas.UserQuery, response=UserPageOut),
    "get_user": Operation(response=UserOut),
    "update_user": Operation(body=schemas.AdminUserSchema, response=UserOut, errors=(409,)),
    "read_link": Operation(response=LinkOut, response_headers=(NO_STORE,), errors=(403, 404, 410)),
}
