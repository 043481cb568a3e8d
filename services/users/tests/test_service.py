"""Service plumbing of users: OpenAPI, health, password hashing defaults, the registration outbox."""

from __future__ import annotations

from typing import Any

from users_support import Api, Client

from shopkit import clock
from users.passwords import Hasher


async def test_openapi_describes_every_route(client: Client) -> None:
    document = await (await client.get("/api/v1/users/openapi.json")).json()
    paths = document["paths"]
    assert document["openapi"].startswith("3.1")
    for path in (
        "/api/v1/auth/register",
        "/api/v1/users/me/addresses/{address_id}",
        "/api/v1/users",
    ):
        assert path in paths
    register_body = paths["/api/v1/auth/register"]["post"]["requestBody"]
    assert register_body["content"]["application/json"]["schema"]


async def test_health_and_readiness(client: Client) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()


async def test_the_default_bcrypt_cost_is_12_and_long_passwords_are_not_truncated() -> None:
    hasher = Hasher("pepper", cost=12)
    prefix = "é" * 100
    hashed = await hasher.hash(prefix + "a")

    assert hashed.startswith("$2b$12$")
    assert await hasher.verify(prefix + "a", hashed)
    assert not await hasher.verify(prefix + "b", hashed)


async def test_events_left_behind_by_a_crash_after_registration_are_flushed(
    api: Api, db: Any
) -> None:
    # given an account whose registration stopped right after its insert (events still pending)
    user = await api.register("crash@example.com")
    pending = [{"id": "replayed-1", "type": "user.registered", "data": {"user_id": user["id"]}}]
    await db.users.update_one(
        {"_id": user["id"]},
        {
            "$set": {
                "pending_events": pending,
                "events_pending": True,
                "created_at": clock.now().replace(year=2020),
            }
        },
    )

    # when the sweeper runs twice
    from users.keys import USERS

    users = api.client.server.app[USERS]
    await users.outbox.flush_stale()
    await users.outbox.flush_stale()

    # then the event is in the stream exactly once and nothing is pending
    assert await db.events.count_documents({"id": "replayed-1"}) == 1
    assert await db.users.count_documents({"pending_events": {"$exists": True}}) == 0
