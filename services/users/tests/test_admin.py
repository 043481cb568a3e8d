"""Administration: the bootstrap admin, listing with cursors, roles, disabling; 403 for everyone else."""

from __future__ import annotations

import asyncio
from typing import Any

from users_support import ADMIN, Api

from shopkit.pagination import encode_cursor


async def test_the_first_admin_is_created_once_across_restarts(start_users: Any, db: Any) -> None:
    await start_users()
    await start_users()
    assert await db.emails.count_documents({"email": ADMIN["email"]}) == 1
    login = await db.emails.find_one({"email": ADMIN["email"]})
    assert (await db.access.find_one({"_id": login["_id"]}))["roles"] == ["admin"]


async def test_customers_get_403_on_admin_routes(api: Api) -> None:
    auth = await api.user("cust@example.com")
    listing = await api.client.get("/api/v1/users", headers=auth)
    promote = await api.client.patch(
        "/api/v1/users/anything", json={"roles": ["admin"]}, headers=auth
    )
    assert (listing.status, promote.status) == (403, 403)
    assert listing.content_type == "application/problem+json"


async def test_admins_page_through_users_with_a_cursor_and_search(api: Api) -> None:
    for n in range(5):
        await api.register(f"page{n}@example.com")
    admin = await api.admin()

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (await api.client.get("/api/v1/users", params=params, headers=admin)).json()
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    found = await (
        await api.client.get("/api/v1/users", params={"q": "page3"}, headers=admin)
    ).json()

    assert len(seen) == 6
    assert len(set(seen)) == 6
    assert [u["email"] for u in found["items"]] == ["page3@example.com"]
    bad = await api.client.get("/api/v1/users", params={"limit": "500"}, headers=admin)
    assert bad.status == 422
    junk = await api.client.get("/api/v1/users", params={"cursor": "%%%"}, headers=admin)
    assert junk.status == 422


async def test_an_out_of_range_cursor_or_limit_is_a_422_never_a_500(api: Api) -> None:
    # given an admin, and cursors this API never gave out: a number past 64 bits, a number where
    # an id goes, a Mongo operator, a nesting, an over-long one; and a limit of fifty digits
    admin = await api.admin()
    queries = [
        {"cursor": encode_cursor(10**30)},
        {"cursor": encode_cursor(7)},
        {"cursor": encode_cursor({"$gt": ""})},
        {"cursor": encode_cursor([[[["a"]]]])},
        {"cursor": encode_cursor("a" * 600)},
        {"limit": "9" * 50},
        {"role": "admin", "cursor": encode_cursor(10**30)},
    ]

    # when it asks for each page
    answers = [
        (await api.client.get("/api/v1/users", params=query, headers=admin)) for query in queries
    ]

    # then each is a 422 problem naming the parameter
    assert [a.status for a in answers] == [422] * len(queries)
    for query, answer in zip(queries, answers, strict=True):
        assert set((await answer.json())["errors"]) == set(query) - {"role"}


async def test_an_admin_changes_roles_and_disabling_ends_sessions(api: Api) -> None:
    user = await api.register("staffer@example.com")
    session = await api.login("staffer@example.com")
    admin = await api.admin()

    promoted = await api.client.patch(
        f"/api/v1/users/{user['id']}", json={"roles": ["staff"]}, headers=admin
    )
    assert (await promoted.json())["roles"] == ["staff"]
    invalid = await api.client.patch(
        f"/api/v1/users/{user['id']}", json={"roles": ["emperor"]}, headers=admin
    )
    assert invalid.status == 422

    await api.client.patch(f"/api/v1/users/{user['id']}", json={"disabled": True}, headers=admin)
    refresh = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    me = await api.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {session['access_token']}"}
    )

    assert refresh.status == 401
    # Refused as disabled, or (once the revocation arrived) its token as revoked.
    assert me.status in (401, 403)


async def test_an_admin_cannot_demote_themselves(api: Api) -> None:
    admin = await api.admin()
    me = await (await api.client.get("/api/v1/users/me", headers=admin)).json()
    response = await api.client.patch(
        f"/api/v1/users/{me['id']}", json={"roles": ["customer"]}, headers=admin
    )
    assert response.status == 409


async def test_an_unknown_user_id_is_404(api: Api) -> None:
    admin = await api.admin()
    response = await api.client.get("/api/v1/users/000000000000000000000000", headers=admin)
    assert response.status == 404


async def test_a_name_edit_racing_a_role_change_keeps_both(api: Api) -> None:
    # given a customer and an admin
    auth = await api.user("promoted@example.com")
    user_id = (await (await api.client.get("/api/v1/users/me", headers=auth)).json())["id"]
    admin = await api.admin()

    async def listed(role: str) -> bool:
        response = await api.client.get(
            "/api/v1/users", params={"role": role, "limit": "100"}, headers=admin
        )
        return user_id in [user["id"] for user in (await response.json())["items"]]

    # when, again and again, the customer renames themselves while an admin changes their role
    lost = []
    for turn in range(30):
        role, other = ("staff", "customer") if turn % 2 else ("customer", "staff")
        # A role change revokes the tokens issued before it: the customer signs in again.
        tokens = await api.login("promoted@example.com")
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        await asyncio.gather(
            api.client.patch("/api/v1/users/me", json={"name": f"Ada {turn}"}, headers=auth),
            api.client.patch(f"/api/v1/users/{user_id}", json={"roles": [role]}, headers=admin),
        )
        me = await (await api.client.get(f"/api/v1/users/{user_id}", headers=admin)).json()
        if (me["name"], me["roles"], await listed(role), await listed(other)) != (
            f"Ada {turn}",
            [role],
            True,
            False,
        ):
            lost.append(turn)

    # then neither change ever undid the other, and the admin list by role tells the truth
    assert lost == []


async def test_admins_page_through_a_role_and_search_within_it(api: Api) -> None:
    # given three staff and two customers
    admin = await api.admin()
    for n in range(5):
        user = await api.register(f"member{n}@example.com", name=f"Member {n}")
        if n < 3:
            await api.call(
                "PATCH",
                f"/api/v1/users/{user['id']}",
                200,
                headers=admin,
                json={"roles": ["staff"]},
            )

    # when an admin pages through the staff two at a time, and searches among them
    seen: list[str] = []
    params = {"role": "staff", "limit": "2"}
    while True:
        page = await api.call("GET", "/api/v1/users", 200, headers=admin, params=params)
        seen += [user["email"] for user in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    found = await api.call(
        "GET", "/api/v1/users", 200, headers=admin, params={"role": "staff", "q": "MEMBER 1"}
    )
    by_email = await api.call("GET", "/api/v1/users", 200, headers=admin, params={"q": "member4@"})

    # then they see each staff member once, and only the one that matches
    assert seen == [f"member{n}@example.com" for n in range(3)]
    assert [user["email"] for user in found["items"]] == ["member1@example.com"]
    assert [user["email"] for user in by_email["items"]] == ["member4@example.com"]
