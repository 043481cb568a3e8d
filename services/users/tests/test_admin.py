"""Administration: the bootstrap admin, listing with cursors, roles, disabling; 403 for everyone else."""

from __future__ import annotations

from typing import Any

from users_support import ADMIN, Api


async def test_the_first_admin_is_created_once_across_restarts(start_users: Any, db: Any) -> None:
    await start_users()
    await start_users()
    assert await db.users.count_documents({"email": ADMIN["email"]}) == 1
    admin = await db.users.find_one({"email": ADMIN["email"]})
    assert admin["roles"] == ["admin"]


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
    assert me.status == 403


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
