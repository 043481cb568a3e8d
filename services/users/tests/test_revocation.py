"""Revocations reach every service within seconds: disabled accounts, removed roles, ended sessions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from users_support import Api, Client

from shopkit.app import build_app
from shopkit.auth import StaticKeys, principal, requires
from shopkit.settings import KitSettings, load
from users.keys import USERS
from users.settings import UsersSettings
from users.signing import SigningKeys

DEADLINE = 15.0
Peer = Callable[[], Awaitable[Client]]


@pytest.fixture
def start_peer(
    serve: Callable[[web.Application], Awaitable[Client]],
    service_env: dict[str, str],
    signing_keys: str,
) -> Peer:
    """Another service (as products is): it only verifies the users service's tokens."""
    keys = SigningKeys(signing_keys).public_keys

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"sub": principal(request).subject})

    @requires("staff")
    async def staff_only(request: web.Request) -> web.Response:
        return web.json_response({})

    async def start() -> Client:
        settings = load(KitSettings, {**service_env, "SERVICE_NAME": "peer"})
        app = build_app(settings, keys=lambda _: StaticKeys(lambda: keys), database=False)
        app.router.add_get("/whoami", whoami)
        app.router.add_get("/staff", staff_only)
        return await serve(app)

    return start


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def disable(api: Api, user_id: str, admin: dict[str, str] | None = None) -> None:
    """An admin disables the account."""
    headers = admin if admin is not None else await api.admin()
    await api.call(
        "PATCH", f"/api/v1/users/{user_id}", 200, headers=headers, json={"disabled": True}
    )


async def refused(client: Client, path: str, auth: dict[str, str]) -> bool:
    """Whether `client` answers 401 to `auth` on `path` before the deadline (polling)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        response = await client.get(path, headers=auth)
        if response.status == 401:
            return True
        assert response.status in (200, 403), await response.text()
        await asyncio.sleep(0.1)
    return False


async def test_a_disabled_accounts_token_is_refused_by_another_service_within_seconds(
    api: Api, start_peer: Peer
) -> None:
    # given a customer whose token another service accepts
    user = await api.register("disabled@example.com")
    auth = bearer(await api.login("disabled@example.com"))
    peer = await start_peer()
    assert (await peer.get("/whoami", headers=auth)).status == 200

    # when an admin disables the account
    await disable(api, user["id"])

    # then the other service refuses the still unexpired token, and says why
    assert await refused(peer, "/whoami", auth)
    problem = await (await peer.get("/whoami", headers=auth)).json()
    assert "revoked" in problem["detail"]


async def test_a_removed_role_takes_effect_and_a_new_token_carries_the_roles_left(
    api: Api, start_peer: Peer
) -> None:
    # given a staff member whose token passes a staff-only route of another service
    user = await api.register("demoted@example.com")
    admin = await api.admin()
    await api.call(
        "PATCH",
        f"/api/v1/users/{user['id']}",
        200,
        headers=admin,
        json={"roles": ["customer", "staff"]},
    )
    auth = bearer(await api.login("demoted@example.com"))
    peer = await start_peer()
    assert (await peer.get("/staff", headers=auth)).status == 200

    # when an admin takes the staff role away
    await api.call(
        "PATCH", f"/api/v1/users/{user['id']}", 200, headers=admin, json={"roles": ["customer"]}
    )

    # then the token issued before is refused, and one issued after works without the role
    assert await refused(peer, "/staff", auth)
    fresh = bearer(await api.login("demoted@example.com"))
    assert (await peer.get("/whoami", headers=fresh)).status == 200
    assert (await peer.get("/staff", headers=fresh)).status == 403


async def test_a_logout_refuses_that_sessions_access_token_everywhere_and_no_other(
    api: Api, start_users: Callable[..., Awaitable[Client]], start_peer: Peer
) -> None:
    # given two sessions of one customer, another service, and a second users instance
    await api.register("leaving@example.com")
    leaving = await api.login("leaving@example.com")
    staying = await api.login("leaving@example.com")
    peer = await start_peer()
    other_users = await start_users()

    # when one session logs out
    await api.call(
        "POST", "/api/v1/auth/logout", 204, json={"refresh_token": leaving["refresh_token"]}
    )

    # then its access token is refused by the other service and the other users instance
    assert await refused(peer, "/whoami", bearer(leaving))
    assert await refused(other_users, "/api/v1/users/me", bearer(leaving))
    # and the other session's token still works
    assert (await peer.get("/whoami", headers=bearer(staying))).status == 200
    assert (await other_users.get("/api/v1/users/me", headers=bearer(staying))).status == 200


async def test_a_service_started_after_a_revocation_refuses_the_token_at_once(
    api: Api, start_peer: Peer
) -> None:
    # given a customer disabled while a service was running, which refuses their token
    user = await api.register("restart@example.com")
    auth = bearer(await api.login("restart@example.com"))
    running = await start_peer()
    await disable(api, user["id"])
    assert await refused(running, "/whoami", auth)

    # when a service instance starts afterwards (a restart, a new replica)
    started = await start_peer()

    # then its very first answer to that token is a refusal: it replayed the recent revocations
    assert (await started.get("/whoami", headers=auth)).status == 401
    metrics = await (await started.get("/metrics")).text()
    gauge = next(
        line
        for line in metrics.splitlines()
        if line.startswith('token_revocations{kind="subject",service="peer"}')
    )
    assert float(gauge.split()[-1]) >= 1
    assert (await started.get("/readyz")).status == 200


def test_users_refuses_an_access_token_lifetime_longer_than_the_replay_window(
    users_env: dict[str, str],
) -> None:
    with pytest.raises(ValueError, match="ACCESS_TOKEN_TTL"):
        load(UsersSettings, {**users_env, "ACCESS_TOKEN_TTL": str(2 * 3600)})


async def test_a_login_racing_a_disable_gets_a_token_the_disable_covers(
    api: Api, start_peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a customer whose login is held after the account was read, before the token is signed
    user = await api.register("racing@example.com")
    admin = await api.admin()
    collaborators = api.client.server.app[USERS]
    read, release = asyncio.Event(), asyncio.Event()
    start = collaborators.families.start

    async def held_start(*args: Any, **kwargs: Any) -> Any:
        read.set()
        await release.wait()
        return await start(*args, **kwargs)

    monkeypatch.setattr(collaborators.families, "start", held_start)
    login = asyncio.create_task(api.login("racing@example.com"))
    await asyncio.wait_for(read.wait(), DEADLINE)

    # when an admin disables the account meanwhile, and the login then finishes
    await disable(api, user["id"], admin)
    release.set()
    auth = bearer(await login)

    # then the token it got, signed after the disable from what was read before, is refused
    peer = await start_peer()
    assert await refused(peer, "/whoami", auth)


async def test_a_session_ended_by_a_request_that_dies_midway_is_still_refused_everywhere(
    api: Api, start_peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a signed-in customer, and a users instance that dies before the family reads revoked
    await api.register("midway@example.com")
    tokens = await api.login("midway@example.com")
    auth = bearer(tokens)
    events = api.client.server.app[USERS].families._events
    append = events.append

    async def dies_on_revoked(stream_id: str, seq: int, type: str, *args: Any, **kw: Any) -> Any:
        if type == "revoked":
            raise RuntimeError("the process died here")
        return await append(stream_id, seq, type, *args, **kw)

    monkeypatch.setattr(events, "append", dies_on_revoked)

    # when the customer signs out and the request dies before the session's revocation is stored
    response = await api.client.post(
        "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}
    )
    assert response.status == 500

    # then the revocation was broadcast first: another service refuses the session's token
    peer = await start_peer()
    assert await refused(peer, "/whoami", auth)
    # and the session cannot come back: its refresh token is refused once the instance recovers
    monkeypatch.undo()
    refreshed = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status == 401, await refreshed.text()
