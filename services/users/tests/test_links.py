"""Verification and reset links: named on the bus by id only, read with their token by notifications."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from users_support import NOTIFICATIONS, ORDERS, Api, Client, eventually

from shopkit import clock
from shopkit.problems import TYPE_BASE


async def _verification(db: Any, email: str) -> dict[str, Any]:
    event = await db.events.find_one(
        {"type": "user.email_verification_requested", "data.email": email}
    )
    assert event is not None
    data: dict[str, Any] = event["data"]
    return data


async def _reset(api: Api, db: Any, email: str) -> dict[str, Any]:
    await api.call("POST", "/api/v1/auth/password-reset", 202, json={"email": email})
    event = await eventually(
        lambda: db.events.find_one({"type": "user.password_reset_requested", "data.email": email})
    )
    data: dict[str, Any] = event["data"]
    return data


async def _problem(response: Any, status: int, slug: str) -> None:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    assert (await response.json())["type"] == TYPE_BASE + slug


async def test_the_verification_and_reset_events_carry_no_token(api: Api, db: Any) -> None:
    # given an account that registered and asked for a password reset
    await api.register("quiet@example.com")
    reset = await _reset(api, db, "quiet@example.com")
    verification = await _verification(db, "quiet@example.com")

    # when notifications reads the two links they name
    tokens = [await api.link_token(verification), await api.link_token(reset)]

    # then neither event holds a token, under any name, nor does any event of the account
    for data in (verification, reset):
        assert "token" not in data
        assert set(data) == {"user_id", "email", "link_id", "expires_at"}
        assert not set(tokens) & set(data.values())
    events = [json.dumps(event, default=str) async for event in db.events.find()]
    assert not any(token in event for token in tokens for event in events)


async def test_notifications_reads_a_live_verification_link_and_it_verifies_the_email(
    api: Api, db: Any
) -> None:
    # given a new account, and the event asking to mail its verification link
    user = await api.register("mailme@example.com")
    verification = await _verification(db, "mailme@example.com")

    # when notifications reads the link
    response = await api.read_link(verification)

    # then it gets the token, unstored on the way, and the token verifies the email
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    link = await response.json()
    assert set(link) == {"purpose", "token", "expires_at"}
    assert link["purpose"] == "email-verification"
    assert link["expires_at"] == verification["expires_at"]
    verified = await api.call(
        "POST", "/api/v1/auth/verify-email", 200, json={"token": link["token"]}
    )
    assert (verified["id"], verified["email_verified"]) == (user["id"], True)


async def test_notifications_reads_a_live_reset_link_and_it_resets_the_password(
    api: Api, db: Any
) -> None:
    # given an account that asked for a password reset
    await api.register("forgot@example.com")
    reset = await _reset(api, db, "forgot@example.com")

    # when notifications reads the link, and its owner follows it
    link = await api.call(
        "GET",
        f"/internal/users/{reset['user_id']}/links/{reset['link_id']}",
        200,
        headers=await api.service(NOTIFICATIONS),
    )
    body = {"token": link["token"], "new_password": "fresh horse 7"}
    await api.call("POST", "/api/v1/auth/password-reset/confirm", 204, json=body)

    # then it was the reset link, and the new password opens the account
    assert link["purpose"] == "password-reset"
    assert link["expires_at"] == reset["expires_at"]
    await api.login("forgot@example.com", "fresh horse 7")


async def test_a_service_other_than_notifications_cannot_read_a_link(api: Api, db: Any) -> None:
    # given a verification link
    user = await api.register("private@example.com")
    verification = await _verification(db, "private@example.com")
    path = f"/internal/users/{user['id']}/links/{verification['link_id']}"

    # when orders, the account's owner or nobody asks for it
    as_orders = await api.read_link(verification, ORDERS)
    as_owner = await api.client.get(path, headers=await api.user("owner@example.com"))
    anonymous = await api.client.get(path)

    # then only forbidden and unauthenticated answers come back
    await _problem(as_orders, 403, "client-not-allowed")
    await _problem(as_owner, 403, "forbidden")
    await _problem(anonymous, 401, "unauthorized")


async def test_an_expired_link_is_gone(api: Api, db: Any) -> None:
    # given a verification link whose time has passed
    await api.register("late@example.com")
    verification = await _verification(db, "late@example.com")
    past = clock.now() - timedelta(seconds=1)
    await db.verifications.update_many({}, {"$set": {"expires_at": past}})

    # when notifications reads it
    response = await api.read_link(verification)

    # then it is gone
    await _problem(response, 410, "link-expired")


async def test_a_used_link_is_gone(api: Api, db: Any) -> None:
    # given a verification link and a reset link, each followed once
    await api.register("done@example.com")
    verification = await _verification(db, "done@example.com")
    token = await api.link_token(verification)
    await api.call("POST", "/api/v1/auth/verify-email", 200, json={"token": token})
    reset = await _reset(api, db, "done@example.com")
    body = {"token": await api.link_token(reset), "new_password": "used horse 9"}
    await api.call("POST", "/api/v1/auth/password-reset/confirm", 204, json=body)

    # when notifications reads them again
    verification_again = await api.read_link(verification)
    reset_again = await api.read_link(reset)

    # then both are gone
    await _problem(verification_again, 410, "link-expired")
    await _problem(reset_again, 410, "link-expired")


async def test_a_verification_link_to_an_address_given_up_on_is_gone(api: Api, db: Any) -> None:
    # given an account that asked to move to one address, then to another
    auth = await api.user("wanderer@example.com")
    for email in ("one@example.com", "two@example.com"):
        await api.call("PATCH", "/api/v1/users/me", 200, json={"email": email}, headers=auth)

    # when notifications reads the first address's link, then the second's
    first = await api.read_link(await _verification(db, "one@example.com"))
    second = await api.read_link(await _verification(db, "two@example.com"))

    # then only the latest is worth mailing
    await _problem(first, 410, "link-expired")
    assert second.status == 200


async def test_an_unknown_link_or_another_users_is_not_found(api: Api, db: Any) -> None:
    # given two accounts, each with its verification link
    mine = await api.register("mine@example.com")
    theirs = await api.register("theirs@example.com")
    their_link = await _verification(db, "theirs@example.com")

    # when notifications asks for a link that never was, and for theirs under my account
    unknown = await api.read_link({"user_id": mine["id"], "link_id": "no-such-link"})
    crossed = await api.read_link({"user_id": mine["id"], "link_id": their_link["link_id"]})

    # then neither is found, and theirs is still theirs
    await _problem(unknown, 404, "link-not-found")
    await _problem(crossed, 404, "link-not-found")
    assert (await api.read_link({**their_link, "user_id": theirs["id"]})).status == 200


async def test_an_expired_link_of_another_user_is_not_found_rather_than_gone(
    api: Api, db: Any
) -> None:
    # given another account's verification link, expired
    mine = await api.register("me2@example.com")
    await api.register("them2@example.com")
    their_link = await _verification(db, "them2@example.com")
    past = clock.now() - timedelta(seconds=1)
    await db.verifications.update_many({}, {"$set": {"expires_at": past}})

    # when notifications asks for it under my account
    crossed = await api.read_link({"user_id": mine["id"], "link_id": their_link["link_id"]})

    # then nothing about it is told
    await _problem(crossed, 404, "link-not-found")


async def test_confirming_an_email_change_publishes_email_changed(api: Api, db: Any) -> None:
    # given an account that verified its address, then asked to move to another
    user = await api.register("before@example.com")
    first = await api.link_token(await _verification(db, "before@example.com"))
    await api.call("POST", "/api/v1/auth/verify-email", 200, json={"token": first})
    auth = {"Authorization": f"Bearer {(await api.login('before@example.com'))['access_token']}"}
    moved = {"email": "after@example.com"}
    await api.call("PATCH", "/api/v1/users/me", 200, json=moved, headers=auth)
    token = await api.link_token(await _verification(db, "after@example.com"))

    # when the new address's link is followed, and followed again
    await api.call("POST", "/api/v1/auth/verify-email", 200, json={"token": token})
    await api.call("POST", "/api/v1/auth/verify-email", 422, json={"token": token})

    # then one email change is published, from the old address to the new (the first
    # verification moved nothing)
    changes = [event async for event in db.events.find({"type": "user.email_changed"})]
    assert [(e["stream_id"], e["data"]) for e in changes] == [
        (
            f"user-{user['id']}",
            {
                "user_id": user["id"],
                "old_email": "before@example.com",
                "new_email": "after@example.com",
            },
        )
    ]


async def test_the_internal_document_describes_the_link_route(client: Client) -> None:
    document = await (await client.get("/internal/users/openapi.json")).json()

    operation = document["paths"]["/internal/users/{user_id}/links/{link_id}"]["get"]

    assert operation["x-roles"] == ["service"]
    assert {"403", "404", "410"} <= set(operation["responses"])
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema
    assert (
        "/internal/users/{user_id}/links/{link_id}"
        not in (await (await client.get("/api/v1/users/openapi.json")).json())["paths"]
    )
