"""HTTP handlers of the users API: validate, call the use case, shape the response."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from shopkit.answers import json_response
from shopkit.auth import principal, public, requires
from shopkit.headers import AUTHORIZATION, CACHE_CONTROL, LOCATION, REAL_IP
from shopkit.idempotency import idempotent
from shopkit.pagination import Page
from shopkit.problems import Unauthorized
from shopkit.schemas import load_body, load_query, read_json, validate
from users import accounts, addresses, resets, schemas, tokens
from users.deps import Collaborators
from users.errors import AccountDisabled, InvalidClient, SessionNotFound
from users.keys import AFTER_ANSWER, USERS
from users.model import User

routes = web.RouteTableDef()
NO_STORE = {CACHE_CONTROL: "no-store"}


def _users(request: web.Request) -> Collaborators:
    return request.app[USERS]


def _client_address(request: web.Request) -> str:
    # nginx sets X-Real-IP to the connecting address; services are only reachable through it.
    return request.headers.get(REAL_IP) or request.remote or "unknown"


async def _me(request: web.Request) -> User:
    user = await _users(request).store.get(principal(request).subject)
    if user is None:
        raise Unauthorized("the account no longer exists")
    if user.disabled:
        raise AccountDisabled("this account is disabled")
    return user


def _json(data: Any, status: int = 200) -> web.Response:
    return json_response(data, status=status, headers=NO_STORE)


# --- auth


@routes.post("/api/v1/auth/register")
@public
@idempotent(required=False)
async def register(request: web.Request) -> web.Response:
    body = await load_body(request, schemas.RegisterSchema())
    user = await accounts.register(_users(request), **body)
    response = _json(user.public(), status=201)
    response.headers[LOCATION] = "/api/v1/users/me"
    return response


@routes.post("/api/v1/auth/login")
@public
async def login(request: web.Request) -> web.Response:
    body = await load_body(request, schemas.LoginSchema())
    pair = await tokens.login(
        _users(request),
        body["email"],
        body["password"],
        client=_client_address(request),
        user_agent=request.headers.get("User-Agent"),
    )
    return _json(pair.public())


@routes.post("/api/v1/auth/refresh")
@public
async def refresh(request: web.Request) -> web.Response:
    body = await load_body(request, schemas.RefreshSchema())
    return _json((await tokens.refresh(_users(request), body["refresh_token"])).public())


@routes.post("/api/v1/auth/logout")
@public
async def logout(request: web.Request) -> web.Response:
    body = await load_body(request, schemas.RefreshSchema())
    await tokens.logout(_users(request), body["refresh_token"])
    return web.Response(status=204)


@routes.post("/api/v1/auth/verify-email")
@public
async def verify_email(request: web.Request) -> web.Response:
    body = await load_body(request, schemas.TokenSchema())
    user = await accounts.verify_email(_users(request), body["token"])
    return _json(user.public())


@routes.post("/api/v1/auth/password-reset")
@public
async def password_reset(request: web.Request) -> web.Response:
    body = await load_body(request, schemas.EmailSchema())
    users = _users(request)
    request_id, email = await resets.ask(users, body["email"], _client_address(request))
    # Looking the account up and mailing it happen after the answer: its time tells nothing.
    request.app[AFTER_ANSWER].start(
        f"password-reset-{request_id}", resets.carry_out(users, request_id, email)
    )
    return _json({"status": "if the account exists, a reset link is on its way"}, status=202)


@routes.post("/api/v1/auth/password-reset/confirm")
@public
async def password_reset_confirm(request: web.Request) -> web.Response:
    body = await load_body(request, schemas.ResetConfirmSchema())
    await accounts.confirm_password_reset(_users(request), body["token"], body["new_password"])
    return web.Response(status=204)


@routes.get("/api/v1/auth/jwks")
@public
async def jwks(request: web.Request) -> web.Response:
    return json_response(
        _users(request).keys.jwks(), headers={CACHE_CONTROL: "public, max-age=300"}
    )


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get(AUTHORIZATION, "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
        raise InvalidClient() from None
    return client_id, secret


@routes.post("/api/v1/auth/token")
@public
async def client_token(request: web.Request) -> web.Response:
    """OAuth 2 client credentials (RFC 6749 section 4.4), as a form or JSON, secret in the body or Basic."""
    if request.content_type == "application/x-www-form-urlencoded":
        raw: Any = dict(await request.post())
    else:
        raw = await read_json(request)
    body = validate(schemas.ClientCredentialsSchema(), raw)
    credentials = _basic_credentials(request) or (
        body.get("client_id", ""),
        body.get("client_secret", ""),
    )
    return _json(tokens.client_credentials(_users(request), *credentials))


# --- the caller's own account


@routes.get("/api/v1/users/me")
async def me(request: web.Request) -> web.Response:
    return _json((await _me(request)).public())


@routes.patch("/api/v1/users/me")
async def update_me(request: web.Request) -> web.Response:
    body = await load_body(request, schemas.ProfileSchema())
    user = await accounts.update_profile(_users(request), await _me(request), body)
    return _json(user.public())


@routes.post("/api/v1/users/me/password")
async def change_password(request: web.Request) -> web.Response:
    body = await load_body(request, schemas.ChangePasswordSchema())
    session = principal(request).session_id
    await accounts.change_password(
        _users(request), await _me(request), body["current_password"], body["new_password"], session
    )
    return web.Response(status=204)


@routes.get("/api/v1/users/me/sessions")
async def sessions(request: web.Request) -> web.Response:
    user = await _me(request)
    current = principal(request).session_id
    found = await _users(request).store.active_sessions(user.id)
    return _json(Page([s.public(current) for s in found], None).to_json())


@routes.delete("/api/v1/users/me/sessions/{session_id}")
async def end_session(request: web.Request) -> web.Response:
    user = await _me(request)
    users = _users(request)
    session = await users.store.session(request.match_info["session_id"])
    if session is None or session.user_id != user.id:
        raise SessionNotFound()
    await users.families.revoke(session.id, reason="ended-by-user")
    return web.Response(status=204)


@routes.get("/api/v1/users/me/addresses")
async def list_addresses(request: web.Request) -> web.Response:
    user = await _me(request)
    found = await _users(request).store.addresses_of(user.id)
    return _json(Page([a.public(user) for a in found], None).to_json())


@routes.post("/api/v1/users/me/addresses")
@idempotent(required=False)
async def add_address(request: web.Request) -> web.Response:
    body = await load_body(request, schemas.AddressSchema())
    address, user = await addresses.add(_users(request), await _me(request), body)
    response = _json(address.public(user), status=201)
    response.headers[LOCATION] = f"/api/v1/users/me/addresses/{address.id}"
    return response


@routes.get("/api/v1/users/me/addresses/{address_id}")
async def get_address(request: web.Request) -> web.Response:
    user = await _me(request)
    address = await addresses.get(_users(request), user, request.match_info["address_id"])
    return _json(address.public(user))


@routes.patch("/api/v1/users/me/addresses/{address_id}")
async def update_address(request: web.Request) -> web.Response:
    body = await load_body(request, schemas.AddressSchema(), partial=True)
    address, user = await addresses.update(
        _users(request), await _me(request), request.match_info["address_id"], body
    )
    return _json(address.public(user))


@routes.delete("/api/v1/users/me/addresses/{address_id}")
async def delete_address(request: web.Request) -> web.Response:
    await addresses.delete(_users(request), await _me(request), request.match_info["address_id"])
    return web.Response(status=204)


# --- administration


@routes.get("/api/v1/users")
@requires("admin", "staff")
async def list_users(request: web.Request) -> web.Response:
    query = load_query(request, schemas.UserQuery())
    limit = query["limit"]
    found = await _users(request).store.search(
        after=query["cursor"], limit=limit + 1, query=query.get("q"), role=query.get("role")
    )
    return _json(Page.of(found, limit, lambda u: u.id, lambda u: u.public()).to_json())


@routes.get("/api/v1/users/{user_id}")
@requires("admin", "staff")
async def get_user(request: web.Request) -> web.Response:
    return _json((await accounts.get(_users(request), request.match_info["user_id"])).public())


@routes.patch("/api/v1/users/{user_id}")
@requires("admin")
async def update_user(request: web.Request) -> web.Response:
    body = await load_body(request, schemas.AdminUserSchema())
    if "roles" in body:
        body["roles"] = sorted(set(body["roles"]))
    user = await accounts.admin_update(
        _users(request), principal(request).subject, request.match_info["user_id"], body
    )
    return _json(user.public())
