"""Access and refresh tokens: what is accepted, what is refused, and how families are revoked."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from users_support import Api, Client, eventually, generate_key_set

from shopkit import clock
from shopkit.events import ConcurrencyConflict, Event, EventStore
from users import accounts, tokens
from users.errors import InvalidCredentials, RefreshTokenReused
from users.keys import USERS
from users.links import Purpose
from users.model import TokenPair
from users.passwords import Hasher
from users.sessions import Families, Issued
from users.sweeper import sweep


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def _me(client: Client, token: str) -> int:
    response = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    return response.status


async def test_register_login_refresh_and_read_me(api: Api) -> None:
    await api.register("flow@example.com")
    tokens = await api.login("flow@example.com")
    assert tokens["expires_in"] == 900

    refreshed = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status == 200
    fresh = await refreshed.json()
    assert fresh["refresh_token"] != tokens["refresh_token"]

    me = await api.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {fresh['access_token']}"}
    )
    assert me.status == 200
    body = await me.json()
    assert body["email"] == "flow@example.com"
    assert body["roles"] == ["customer"]
    assert "password_hash" not in body


async def test_the_access_token_carries_the_expected_claims(api: Api) -> None:
    await api.register("claims@example.com")
    token = (await api.login("claims@example.com"))["access_token"]
    header_segment, payload_segment, _ = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_segment + "=="))
    claims = json.loads(base64.urlsafe_b64decode(payload_segment + "=="))

    assert header["alg"] == "ES256"
    assert header["kid"] == "test-1"
    assert {"iss", "aud", "sub", "roles", "exp", "sid"} <= claims.keys()
    # `iat` has milliseconds (revocations cut at a moment); `exp` is whole seconds.
    assert claims["exp"] - int(claims["iat"]) == 900


async def test_forged_tokens_are_refused(api: Api, signing_keys: str) -> None:
    await api.register("forge@example.com")
    genuine = (await api.login("forge@example.com"))["access_token"]
    header, payload, signature = genuine.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    now = int(time.time())
    stranger = ECKey.import_key(json.loads(generate_key_set("test-1"))["keys"][0])
    ours = ECKey.import_key(json.loads(signing_keys)["keys"][0])

    def signed(changes: dict[str, Any], key: ECKey = ours) -> str:
        return jwt.encode({"alg": "ES256", "kid": "test-1"}, {**claims, **changes}, key)

    forged = {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "alg none, no signature": f"{_b64({'alg': 'none'})}.{payload}",
        "alg HS256 with the public key": f"{_b64({'alg': 'HS256', 'kid': 'test-1'})}.{payload}.{signature}",
        "another key": signed({}, stranger),
        "wrong audience": signed({"aud": "elsewhere"}),
        "wrong issuer": signed({"iss": "https://evil.example"}),
        "expired": signed({"exp": now - 120, "iat": now - 1000, "nbf": now - 1000}),
        "tampered payload": f"{header}.{_b64({**claims, 'roles': ['admin']})}.{signature}",
        "garbage": "not-a-token",
    }

    statuses = {name: await _me(api.client, token) for name, token in forged.items()}

    assert statuses == dict.fromkeys(forged, 401)
    assert await _me(api.client, genuine) == 200


async def test_a_missing_token_gets_401_with_a_bearer_challenge(client: Client) -> None:
    response = await client.get("/api/v1/users/me")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.content_type == "application/problem+json"


async def test_a_reused_refresh_token_revokes_its_whole_family(api: Api) -> None:
    # given a login whose refresh token was rotated once
    await api.register("reuse@example.com")
    first = await api.login("reuse@example.com")
    second = await (
        await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
    ).json()

    # when the spent token is presented again (a thief replaying it)
    replay = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )

    # then it is refused, and so is the legitimate newest token of that family
    assert replay.status == 401
    after = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert after.status == 401


async def test_two_uses_of_one_refresh_token_at_once_rotate_it_once_and_end_its_family(
    api: Api,
) -> None:
    # given a login
    await api.register("twice@example.com")
    token = (await api.login("twice@example.com"))["refresh_token"]
    families = api.client.server.app[USERS].families

    # when its refresh token is used twice at the same moment
    results = await asyncio.gather(
        families.rotate(token), families.rotate(token), return_exceptions=True
    )

    # then one use rotated it and the other found it spent, which is reuse: the family ended,
    # so even the winner's new token is refused
    issued = [result for result in results if isinstance(result, Issued)]
    refused = [type(result) for result in results if not isinstance(result, Issued)]
    assert (len(issued), refused) == (1, [RefreshTokenReused])
    assert await _refresh(api.client, issued[0].refresh_token) == 401


async def test_logout_ends_the_session(api: Api) -> None:
    await api.register("bye@example.com")
    tokens = await api.login("bye@example.com")

    out = await api.client.post(
        "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}
    )
    again = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )

    assert out.status == 204
    assert again.status == 401


async def test_jwks_publishes_public_keys_only(client: Client) -> None:
    response = await client.get("/api/v1/auth/jwks")
    keys = (await response.json())["keys"]
    assert [k["kid"] for k in keys] == ["test-1"]
    assert all("d" not in k for k in keys)
    assert response.headers["Cache-Control"].startswith("public")


async def test_a_token_of_a_rotated_out_key_verifies_until_the_key_is_retired(
    start_users: Any, signing_keys: str
) -> None:
    # given a token signed by the old key
    old = await start_users()
    await Api(old).register("rotate@example.com")
    token = (await Api(old).login("rotate@example.com"))["access_token"]

    # when a new key signs and the old one is kept for verification
    new_key = json.loads(generate_key_set("test-2"))["keys"][0]
    both = json.dumps({"keys": [new_key, json.loads(signing_keys)["keys"][0]]})
    rotated = await start_users(SIGNING_KEYS=both)
    retired = await start_users(SIGNING_KEYS=json.dumps({"keys": [new_key]}))

    # then the old token still works, new tokens carry the new kid, and retiring the key ends it
    assert await _me(rotated, token) == 200
    fresh = (await Api(rotated).login("rotate@example.com"))["access_token"]
    assert json.loads(base64.urlsafe_b64decode(fresh.split(".")[0] + "=="))["kid"] == "test-2"
    assert await _me(retired, token) == 401


async def test_client_credentials_give_a_service_token(client: Client) -> None:
    granted = await client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "orders",
            "client_secret": "orders-secret",
        },
    )
    assert granted.status == 200
    token = (await granted.json())["access_token"]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["roles"] == ["service"]
    assert claims["sub"] == "service:orders"

    basic = base64.b64encode(b"orders:wrong").decode()
    refused = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert refused.status == 401


class _HeldAfterVerifying:
    """A hasher whose password checks, once done, wait for `release`: a login paused between
    reading the password hash and starting its session."""

    def __init__(self, hasher: Hasher) -> None:
        self.hasher = hasher
        self.verified, self.release = asyncio.Event(), asyncio.Event()

    async def hash(self, password: str) -> str:
        return await self.hasher.hash(password)

    async def verify(self, password: str, hashed: str | None) -> bool:
        matched = await self.hasher.verify(password, hashed)
        self.verified.set()
        await self.release.wait()
        return matched


async def _refresh(client: Client, refresh_token: str) -> int:
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    return response.status


async def test_a_login_that_checked_the_old_password_during_a_change_keeps_no_session(
    api: Api,
) -> None:
    # given a login that has checked the old password and not yet started its session
    await api.register("overtaken@example.com")
    users = api.client.server.app[USERS]
    held = _HeldAfterVerifying(users.hasher)
    login = asyncio.create_task(
        tokens.login(
            replace(users, hasher=held),
            "overtaken@example.com",
            "correct horse",
            client="198.51.100.1",
            user_agent=None,
        )
    )
    await held.verified.wait()

    # when the password changes (revoking every session) before that login goes on
    user = await users.store.by_email("overtaken@example.com")
    assert user is not None
    await accounts.change_password(users, user, "correct horse", "brand new horse", session=None)
    held.release.set()
    (outcome,) = await asyncio.gather(login, return_exceptions=True)

    # then the login is refused, and had it answered tokens, its refresh token would be dead
    if isinstance(outcome, TokenPair):
        assert await _refresh(api.client, outcome.refresh_token) == 401
    assert isinstance(outcome, InvalidCredentials)


class _RevocationsCrash:
    """Families whose `revoke_all` never happens: the process died right before it."""

    def __init__(self, families: Any) -> None:
        self.families = families

    def __getattr__(self, name: str) -> Any:
        return getattr(self.families, name)

    async def revoke_all(self, *args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the instance died")


async def test_a_session_started_before_the_current_password_cannot_refresh(api: Api) -> None:
    # given a session, and a password change that stopped after storing the new password,
    # before it revoked the sessions
    await api.register("halfway@example.com")
    session = await api.login("halfway@example.com")
    users = api.client.server.app[USERS]
    user = await users.store.by_email("halfway@example.com")
    assert user is not None
    crashing = replace(users, families=_RevocationsCrash(users.families))
    with pytest.raises(ConnectionError):
        await accounts.change_password(crashing, user, "correct horse", "brand new horse", None)

    # when the old session refreshes
    status = await _refresh(api.client, session["refresh_token"])

    # then it is refused: the password it was opened with is no longer the account's
    assert status == 401


async def test_a_refresh_writing_its_session_back_cannot_undo_a_logout(api: Api, db: Any) -> None:
    # given two sessions, one of them as a refresh read it to note its use
    await api.register("ended@example.com")
    looking = await api.login("ended@example.com")
    ending = await api.login("ended@example.com")
    session_id = ending["refresh_token"].partition(".")[0]
    stale = await db.sessions.find_one({"_id": session_id})

    # when that session logs out, and then the refresh writes the whole document back with its
    # use noted (what FerretDB does with an update that raced the logout's)
    await api.client.post("/api/v1/auth/logout", json={"refresh_token": ending["refresh_token"]})
    await db.sessions.replace_one({"_id": session_id}, {**stale, "last_used_at": clock.now()})

    # then the ended session is still not listed as active
    auth = {"Authorization": f"Bearer {looking['access_token']}"}
    listed = await (await api.client.get("/api/v1/users/me/sessions", headers=auth)).json()
    assert [s["current"] for s in listed["items"]] == [True]


async def test_the_sweeper_purges_long_ended_sessions_and_keeps_live_ones(
    api: Api, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a session that expired long ago, one logged out two days ago, and a live one
    await api.register("sweep@example.com")
    real_now = clock.now

    async def login_at(moment: datetime) -> str:
        monkeypatch.setattr(clock, "now", lambda: moment)
        try:
            return str((await api.login("sweep@example.com"))["refresh_token"])
        finally:
            monkeypatch.setattr(clock, "now", real_now)

    expired = await login_at(real_now() - timedelta(days=60))
    logged_out = await login_at(real_now() - timedelta(days=2))
    monkeypatch.setattr(clock, "now", lambda: real_now() - timedelta(days=2))
    await api.client.post("/api/v1/auth/logout", json={"refresh_token": logged_out})
    monkeypatch.setattr(clock, "now", real_now)
    live = (await api.login("sweep@example.com"))["refresh_token"]

    # when the sweeper runs
    await sweep(api.client.server.app[USERS])

    # then the ended families' events and sessions are gone, and the live one is untouched
    def family(token: str) -> str:
        return token.partition(".")[0]

    for ended in (expired, logged_out):
        assert await db.token_events.count_documents({"stream_id": f"family-{family(ended)}"}) == 0
        assert await db.sessions.count_documents({"_id": family(ended)}) == 0
    assert await db.token_events.count_documents({"stream_id": f"family-{family(live)}"}) == 1
    assert await db.sessions.count_documents({"_id": family(live)}) == 1
    assert await _refresh(api.client, live) == 200


class _CarryOversAlwaysOvertaken(EventStore):
    """Refresh-token events on which every carry-over loses its race to another append."""

    async def append(
        self,
        stream_id: str,
        expected_seq: int,
        type: str,
        data: dict[str, Any],
        event_id: str | None = None,
        *,
        publish: bool = True,
    ) -> Event:
        if type == "carried-over":
            raise ConcurrencyConflict("another append took the slot")
        return await super().append(stream_id, expected_seq, type, data, event_id, publish=publish)


async def test_a_carry_over_that_keeps_losing_its_race_is_logged(
    api: Api, db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # given a session whose stream every carry-over loses
    await api.register("carried@example.com")
    users = api.client.server.app[USERS]
    user = await users.store.by_email("carried@example.com")
    assert user is not None
    families = Families(
        _CarryOversAlwaysOvertaken(db, collection="token_events"), users.store, 3600
    )
    issued = await families.start(user.id, user.credentials_version, None, None)

    # when the password change tries to keep it alive under a new version
    with caplog.at_level(logging.WARNING, logger="users.sessions"):
        await families.carry_over(issued.family_id, user.id, user.credentials_version, "v2")

    # then giving up is not silent: a warning names the session
    assert [r.levelno for r in caplog.records if issued.family_id in r.getMessage()] == [
        logging.WARNING
    ]


async def test_the_sweeper_forgets_expired_links_their_uses_and_old_failures_only(
    api: Api, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given two accounts, one of which left traces three days ago and the other now: a link to
    # verify a new email, a password reset link and the record of its use, a failed login
    users = api.client.server.app[USERS]
    real_now = clock.now
    accounts = {"old": "198.51.100.1", "live": "198.51.100.2"}
    for name in accounts:
        await api.register(f"{name}@example.com")

    async def leave_traces(name: str) -> None:
        email = f"{name}@example.com"
        auth = {"Authorization": f"Bearer {(await api.login(email))['access_token']}"}
        moved = {"email": f"{name}-moved@example.com"}
        await api.call("PATCH", "/api/v1/users/me", 200, json=moved, headers=auth)
        await api.call("POST", "/api/v1/auth/password-reset", 202, json={"email": email})
        reset = await eventually(
            lambda: db.events.find_one(
                {"type": "user.password_reset_requested", "data.email": email}
            )
        )
        # Used through the store: the app's own sweeper may purge the old link before a confirm.
        token = api.derived_token(Purpose.PASSWORD_RESET, reset["data"]["link_id"])
        token_hash = hashlib.sha256(token.encode()).hexdigest()
        expires_at = datetime.fromisoformat(reset["data"]["expires_at"])
        assert await users.store.use_token(token_hash, expires_at)
        wrong = {"email": email, "password": "wrong horse"}
        await api.call(
            "POST", "/api/v1/auth/login", 401, json=wrong, headers={"X-Real-IP": accounts[name]}
        )

    monkeypatch.setattr(clock, "now", lambda: real_now() - timedelta(days=3))
    await leave_traces("old")
    monkeypatch.setattr(clock, "now", real_now)
    await leave_traces("live")

    # when the sweeper runs
    await sweep(users)

    # then what expired days ago is gone, and what is live stays
    async def left(name: str) -> list[int]:
        user = await users.store.by_email(f"{name}@example.com")
        assert user is not None
        return [
            await db.verifications.count_documents({"email": f"{name}-moved@example.com"}),
            await db.reset_tokens.count_documents({"user_id": user.id}),
            await db.login_failures.count_documents(
                {"key": f"account:{name}@example.com|{accounts[name]}"}
            ),
        ]

    assert await left("old") == [0, 0, 0]
    assert await left("live") == [1, 1, 1]
    assert await db.used_tokens.count_documents({}) == 1
