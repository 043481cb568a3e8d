"""Service plumbing of users: OpenAPI, health, password hashing defaults, finishing registrations."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from users_support import Api, Client

from shopkit import clock
from users.history import ABANDON_AFTER
from users.keys import USERS
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
    # given an account whose registration stopped right after inserting it (its events not flushed)
    user = await api.register("crash@example.com")
    pending = [{"id": "replayed-1", "type": "user.registered", "data": {"user_id": user["id"]}}]
    await db.registrations.insert_one(
        {"_id": user["id"], "events": pending, "at": clock.now() - timedelta(minutes=1)}
    )

    # when the sweeper runs twice
    users = api.client.server.app[USERS]
    await users.history.finish_registrations()
    await users.history.finish_registrations()

    # then the event is in the stream exactly once and nothing is pending
    assert await db.events.count_documents({"id": "replayed-1"}) == 1
    assert await db.registrations.count_documents({}) == 0


async def test_a_registration_that_died_before_its_account_frees_its_email(
    api: Api, db: Any
) -> None:
    # given a registration that claimed its email and died before inserting the account
    await db.emails.insert_one({"_id": "dead-1", "email": "late@example.com"})
    taken = await api.client.post(
        "/api/v1/auth/register",
        json={"email": "late@example.com", "password": "correct horse", "name": "Late"},
    )
    assert taken.status == 409
    began = clock.now() - ABANDON_AFTER - timedelta(minutes=1)
    await db.registrations.insert_one({"_id": "dead-1", "events": [], "at": began})

    # when the sweeper runs
    await api.client.server.app[USERS].history.finish_registrations()

    # then the email is free again, and nothing of the dead registration is left
    await api.register("late@example.com")
    assert await db.registrations.count_documents({}) == 0
    assert await db.emails.count_documents({"_id": "dead-1"}) == 0


async def test_a_young_registration_without_its_account_yet_is_left_alone(
    api: Api, db: Any
) -> None:
    # given a registration that claimed its email a minute ago and has not inserted its account
    began = clock.now() - timedelta(minutes=1)
    await db.registrations.insert_one({"_id": "slow-1", "events": [], "at": began})
    await db.emails.insert_one({"_id": "slow-1", "email": "slow@example.com"})

    # when the sweeper runs, then its claim stands
    await api.client.server.app[USERS].history.finish_registrations()
    assert await db.emails.count_documents({"_id": "slow-1"}) == 1
    assert await db.registrations.count_documents({}) == 1
