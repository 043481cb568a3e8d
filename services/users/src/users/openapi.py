"""Which schema describes each handler's body and query in the users API's OpenAPI document."""

from __future__ import annotations

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
