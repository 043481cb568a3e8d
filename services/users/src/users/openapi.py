"""The users API's OpenAPI document: which schema describes each handler's body and query."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from shopkit import openapi
from users import schemas

BODIES = {
    "register": schemas.RegisterSchema,
    "login": schemas.LoginSchema,
    "refresh": schemas.RefreshSchema,
    "logout": schemas.RefreshSchema,
    "verify_email": schemas.TokenSchema,
    "password_reset": schemas.EmailSchema,
    "password_reset_confirm": schemas.ResetConfirmSchema,
    "client_token": schemas.ClientCredentialsSchema,
    "update_me": schemas.ProfileSchema,
    "change_password": schemas.ChangePasswordSchema,
    "add_address": schemas.AddressSchema,
    "update_address": schemas.AddressSchema,
    "update_user": schemas.AdminUserSchema,
}
QUERIES = {"list_users": schemas.UserQuery}


def document(app: web.Application) -> dict[str, Any]:
    return openapi.document(app, title="users", version="1.0.0", bodies=BODIES, queries=QUERIES)
