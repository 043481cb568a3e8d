"""Registration: unique emails, password rules, refused fields, idempotency and its events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from users_support import Api, Client


async def test_twenty_concurrent_registrations_of_one_email_give_one_account(
    client: Client,
) -> None:
    # given twenty clients registering the same address at once
    body = {"email": "Race@Example.com", "password": "correct horse", "name": "Racer"}

    # when they all post together
    responses = await asyncio.gather(
        *(client.post("/api/v1/auth/register", json=body) for _ in range(20))
    )

    # then exactly one wins and the others are told the email is taken
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] + [409] * 19
    problem = await next(r for r in responses if r.status == 409).json()
    assert problem["type"].endswith("email-already-registered")


async def test_an_email_differing_only_in_case_is_the_same_account(api: Api) -> None:
    # given an account
    await api.register("ada@example.com")

    # when another registers the address in other case
    response = await api.client.post(
        "/api/v1/auth/register",
        json={"email": "ADA@Example.COM", "password": "x" * 8, "name": "A"},
    )

    # then the address is taken, and the account logs in by it in any case
    assert response.status == 409, await response.text()
    assert (await api.login("Ada@EXAMPLE.com"))["token_type"] == "Bearer"


@pytest.mark.parametrize(
    "look_alike",
    [
        "\uff53am@example.com",  # fullwidth s
        "\U0001d42cam@example.com",  # mathematical bold s
        "\uff53\uff41\uff4d@example.com",  # fullwidth sam
        "SAM@example.com",
    ],
)
async def test_an_email_in_fullwidth_or_mathematical_letters_is_the_same_account(
    api: Api, look_alike: str
) -> None:
    # given an account
    await api.register("sam@example.com")

    # when another registers an address that only looks like it
    response = await api.client.post(
        "/api/v1/auth/register",
        json={"email": look_alike, "password": "x" * 8, "name": "Mallory"},
    )

    # then the address is taken, and it logs in to the first account
    assert response.status == 409, await response.text()
    assert (await api.login(look_alike))["token_type"] == "Bearer"


async def test_an_email_registered_in_fullwidth_letters_is_kept_in_plain_letters(
    api: Api,
) -> None:
    # when an account registers with fullwidth letters (as some input methods type them)
    user = await api.register("\uff54\uff45\uff44@example.com")

    # then its address is the plain one, which logs in
    assert user["email"] == "ted@example.com"
    assert (await api.login("ted@example.com"))["token_type"] == "Bearer"


async def test_a_200_character_emoji_password_registers_and_logs_in(api: Api) -> None:
    password = "🔐🦄" * 100
    assert len(password) == 200

    await api.register("emoji@example.com", password)
    tokens = await api.login("emoji@example.com", password)

    assert tokens["token_type"] == "Bearer"


async def test_a_300_character_password_is_refused_with_a_field_error(client: Client) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "long@example.com", "password": "p" * 300, "name": "L"},
    )
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    assert "password" in (await response.json())["errors"]


async def test_a_7_character_password_is_refused(client: Client) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "short@example.com", "password": "1234567", "name": "S"},
    )
    assert response.status == 422


async def test_a_client_sent_roles_field_on_register_is_refused(client: Client) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={
            "email": "sneaky@example.com",
            "password": "correct horse",
            "name": "S",
            "roles": ["admin"],
        },
    )
    assert response.status == 422
    assert "roles" in (await response.json())["errors"]


async def test_a_body_of_50000_unknown_fields_answers_a_short_422(client: Client) -> None:
    # given a registration with 50,000 fields nobody asked for
    body = {"email": "many@example.com", "password": "correct horse", "name": "M"}
    body.update({f"extra{n}": 1 for n in range(50_000)})

    # when it is posted
    response = await client.post("/api/v1/auth/register", json=body)

    # then the 422 names twenty of them and counts the rest, in a few kilobytes
    problem = await response.json()
    assert response.status == 422
    assert len(problem["errors"]) == 20
    assert problem["errors_omitted"] == 49_980
    assert len(await response.read()) < 4000


async def test_malformed_json_is_a_400_problem(client: Client) -> None:
    response = await client.post(
        "/api/v1/auth/register", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert response.content_type == "application/problem+json"


async def test_the_same_idempotency_key_replays_and_another_body_gets_422(client: Client) -> None:
    headers = {"Idempotency-Key": "signup-1"}
    body = {"email": "idem@example.com", "password": "correct horse", "name": "Idem"}

    first = await client.post("/api/v1/auth/register", json=body, headers=headers)
    again = await client.post("/api/v1/auth/register", json=body, headers=headers)
    other = await client.post(
        "/api/v1/auth/register", json={**body, "email": "other@example.com"}, headers=headers
    )

    assert first.status == 201
    assert again.status == 201
    assert (await again.json())["id"] == (await first.json())["id"]
    assert other.status == 422
    assert other.content_type == "application/problem+json"


async def test_registration_appends_registered_and_verification_events(api: Api, db: Any) -> None:
    user = await api.register("events@example.com")

    types = [e["type"] async for e in db.events.find({"stream_id": f"user-{user['id']}"})]

    assert sorted(types) == ["user.email_verification_requested", "user.registered"]
    assert await db.registrations.count_documents({}) == 0


async def test_email_verification_uses_the_token_once(api: Api, db: Any) -> None:
    user = await api.register("verify@example.com")
    event = await db.events.find_one({"type": "user.email_verification_requested"})
    token = await api.link_token(event["data"])

    first = await api.client.post("/api/v1/auth/verify-email", json={"token": token})
    second = await api.client.post("/api/v1/auth/verify-email", json={"token": token})

    assert first.status == 200
    assert (await first.json())["email_verified"] is True
    assert (await first.json())["id"] == user["id"]
    assert second.status == 422
