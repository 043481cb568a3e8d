"""The caller's own account: profile edits, email change, password change and reset, sessions."""

from __future__ import annotations

import asyncio
from typing import Any

from users_support import Api, eventually

from users.keys import USERS
from users.links import Purpose


async def test_profile_update_changes_name_and_refuses_roles(api: Api) -> None:
    auth = await api.user("me@example.com")

    renamed = await api.client.patch("/api/v1/users/me", json={"name": "Grace"}, headers=auth)
    escalate = await api.client.patch("/api/v1/users/me", json={"roles": ["admin"]}, headers=auth)
    me = await (await api.client.get("/api/v1/users/me", headers=auth)).json()

    assert renamed.status == 200
    assert escalate.status == 422
    assert me["name"] == "Grace"
    assert me["roles"] == ["customer"]


async def test_a_profile_phone_with_a_trailing_newline_is_refused(api: Api) -> None:
    # given a user
    auth = await api.user("phone@example.com")

    # when the profile's phone ends in a newline
    response = await api.client.patch(
        "/api/v1/users/me", json={"phone": "+4930123456\n"}, headers=auth
    )

    # then it is refused and the profile keeps no phone
    assert response.status == 422
    assert set((await response.json())["errors"]) == {"phone"}
    assert (await api.call("GET", "/api/v1/users/me", 200, headers=auth))["phone"] is None


async def test_an_email_change_waits_for_verification(api: Api, db: Any) -> None:
    auth = await api.user("old@example.com")

    changed = await (
        await api.client.patch("/api/v1/users/me", json={"email": "new@example.com"}, headers=auth)
    ).json()
    assert changed["email"] == "old@example.com"
    assert changed["pending_email"] == "new@example.com"

    event = await db.events.find_one(
        {"type": "user.email_verification_requested", "data.email": "new@example.com"}
    )
    verified = await api.client.post(
        "/api/v1/auth/verify-email", json={"token": await api.link_token(event["data"])}
    )
    body = await verified.json()
    assert body["email"] == "new@example.com"
    assert body["email_verified"] is True
    assert body["pending_email"] is None


async def test_changing_the_password_ends_every_other_session(api: Api) -> None:
    await api.register("pw@example.com")
    laptop = await api.login("pw@example.com")
    phone = await api.login("pw@example.com")
    auth = {"Authorization": f"Bearer {laptop['access_token']}"}

    wrong = await api.client.post(
        "/api/v1/users/me/password",
        json={"current_password": "nope nope", "new_password": "brand new horse"},
        headers=auth,
    )
    changed = await api.client.post(
        "/api/v1/users/me/password",
        json={"current_password": "correct horse", "new_password": "brand new horse"},
        headers=auth,
    )

    assert wrong.status == 401
    assert changed.status == 204
    phone_refresh = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]}
    )
    laptop_refresh = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": laptop["refresh_token"]}
    )
    assert phone_refresh.status == 401
    assert laptop_refresh.status == 200
    await api.login("pw@example.com", "brand new horse")


async def test_password_reset_answers_alike_and_its_token_works_once(api: Api, db: Any) -> None:
    await api.register("reset@example.com")
    session = await api.login("reset@example.com")

    known = await api.client.post(
        "/api/v1/auth/password-reset", json={"email": "reset@example.com"}
    )
    unknown = await api.client.post(
        "/api/v1/auth/password-reset", json={"email": "ghost@example.com"}
    )
    assert known.status == unknown.status == 202
    assert await known.json() == await unknown.json()

    event = await eventually(lambda: db.events.find_one({"type": "user.password_reset_requested"}))
    token = await api.link_token(event["data"])
    body = {"token": token, "new_password": "reset horse 42"}
    first = await api.client.post("/api/v1/auth/password-reset/confirm", json=body)
    second = await api.client.post("/api/v1/auth/password-reset/confirm", json=body)

    assert first.status == 204
    assert second.status == 422
    await api.login("reset@example.com", "reset horse 42")
    stale = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert stale.status == 401


async def test_sessions_are_listed_and_can_be_ended_by_their_owner_only(api: Api) -> None:
    await api.register("s@example.com")
    first = await api.login("s@example.com", **{"User-Agent": "laptop"})
    second = await api.login("s@example.com", **{"User-Agent": "phone"})
    auth = {"Authorization": f"Bearer {first['access_token']}"}
    intruder = await api.user("intruder@example.com")

    listed = (await (await api.client.get("/api/v1/users/me/sessions", headers=auth)).json())[
        "items"
    ]
    assert len(listed) == 2
    assert [s["current"] for s in listed].count(True) == 1
    other = next(s for s in listed if not s["current"])

    stolen = await api.client.delete(f"/api/v1/users/me/sessions/{other['id']}", headers=intruder)
    ended = await api.client.delete(f"/api/v1/users/me/sessions/{other['id']}", headers=auth)

    assert stolen.status == 404
    assert ended.status == 204
    refresh = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert refresh.status == 401


async def test_a_change_on_one_instance_is_seen_by_another_at_once(start_users: Any) -> None:
    # given two instances on one database, the second having cached the account
    first, second = await start_users(), await start_users()
    auth = await Api(first).user("two@example.com")
    assert (await (await second.get("/api/v1/users/me", headers=auth)).json())["name"] == "Ada"

    # when the first one renames it
    await first.patch("/api/v1/users/me", json={"name": "Grace"}, headers=auth)

    # then the second answers the new name as soon as the invalidation arrives
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        me = await (await second.get("/api/v1/users/me", headers=auth)).json()
        if me["name"] == "Grace":
            break
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


async def test_a_stale_write_of_the_account_document_cannot_undo_a_password_change(
    api: Api, db: Any
) -> None:
    # given an account as a slow profile update read it, before its password changed
    auth = await api.user("guarded@example.com")
    login = await db.emails.find_one({"email": "guarded@example.com"})
    stale = await db.users.find_one({"_id": login["_id"]})
    await api.client.post(
        "/api/v1/users/me/password",
        json={"current_password": "correct horse", "new_password": "brand new horse"},
        headers=auth,
    )

    # when that update writes the whole old document back (what FerretDB does under a race)
    await db.users.replace_one({"_id": stale["_id"]}, stale)

    # then only the new password opens the account
    old = await api.client.post(
        "/api/v1/auth/login", json={"email": "guarded@example.com", "password": "correct horse"}
    )
    assert old.status == 401
    await api.login("guarded@example.com", "brand new horse")


async def test_only_the_link_for_the_latest_pending_email_verifies(api: Api, db: Any) -> None:
    # given an account that asked to move to one email and then to another
    auth = await api.user("mover@example.com")
    for email in ("first@example.com", "second@example.com"):
        await api.client.patch("/api/v1/users/me", json={"email": email}, headers=auth)

    async def verify(email: str) -> Any:
        event = await db.events.find_one(
            {"type": "user.email_verification_requested", "data.email": email}
        )
        # Derived here: notifications is no longer given a superseded link.
        token = api.derived_token(Purpose.EMAIL_VERIFICATION, event["data"]["link_id"])
        return await api.client.post("/api/v1/auth/verify-email", json={"token": token})

    # when the link of the first one is followed, then that of the second
    superseded = await verify("first@example.com")
    latest = await verify("second@example.com")

    # then the first is refused and the second verifies
    assert superseded.status == 422
    assert (await latest.json())["email"] == "second@example.com"


async def test_a_name_edit_racing_an_email_verification_keeps_both(api: Api, db: Any) -> None:
    # given an account
    auth = await api.user("racer@example.com")

    # when, again and again, it asks for a new email and renames itself as it verifies it
    lost = []
    for turn in range(20):
        email = f"racer{turn}@example.com"
        await api.client.patch("/api/v1/users/me", json={"email": email}, headers=auth)
        event = await db.events.find_one(
            {"type": "user.email_verification_requested", "data.email": email}
        )
        token = await api.link_token(event["data"])
        await asyncio.gather(
            api.client.patch("/api/v1/users/me", json={"name": f"Ada {turn}"}, headers=auth),
            api.client.post("/api/v1/auth/verify-email", json={"token": token}),
        )
        me = await (await api.client.get("/api/v1/users/me", headers=auth)).json()
        if (me["name"], me["email"], me["email_verified"], me["pending_email"]) != (
            f"Ada {turn}",
            email,
            True,
            None,
        ):
            lost.append(turn)

    # then neither change ever undid the other
    assert lost == []


async def test_a_password_change_ends_every_other_session_however_many(api: Api) -> None:
    # given an account signed in on more devices than a page of sessions lists
    await api.register("busy@example.com")
    users = api.client.server.app[USERS]
    user = await users.store.by_email("busy@example.com")
    assert user is not None
    for _ in range(102):
        await users.families.start(user.id, user.credentials_version, "old device", None)
    current = await api.login("busy@example.com")
    auth = {"Authorization": f"Bearer {current['access_token']}"}

    # when the password changes on the newest one
    changed = await api.client.post(
        "/api/v1/users/me/password",
        json={"current_password": "correct horse", "new_password": "brand new horse"},
        headers=auth,
    )

    # then every other session was revoked: only the current one is still listed
    assert changed.status == 204
    listed = await (await api.client.get("/api/v1/users/me/sessions", headers=auth)).json()
    assert [session["current"] for session in listed["items"]] == [True]
