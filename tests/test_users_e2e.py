"""The users journey end to end, through nginx to two users processes sharing one database."""

from __future__ import annotations

import uuid

import aiohttp
from e2e_support import expect_json


async def test_register_login_refresh_and_read_me_through_the_gateway(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    credentials = {"email": email, "password": "correct horse battery"}

    async with http.post(
        f"{gateway}/api/v1/auth/register", json={**credentials, "name": "E2E"}
    ) as r:
        created = await expect_json(r, 201)
    async with http.post(f"{gateway}/api/v1/auth/login", json=credentials) as r:
        tokens = await expect_json(r, 200)
    async with http.post(
        f"{gateway}/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    ) as r:
        refreshed = await expect_json(r, 200)
    auth = {"Authorization": f"Bearer {refreshed['access_token']}"}
    # Several reads, so both instances behind the balancer answer with the same key set.
    for _ in range(4):
        async with http.get(f"{gateway}/api/v1/users/me", headers=auth) as r:
            me = await expect_json(r, 200)
            assert me["id"] == created["id"]


async def test_jwks_answers_keys_through_the_gateway(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway}/api/v1/auth/jwks") as r:
        keys = (await expect_json(r, 200))["keys"]
    assert keys
    assert all({"kid", "kty", "x", "y"} <= key.keys() and "d" not in key for key in keys)


async def test_the_admin_from_the_environment_can_log_in(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{gateway}/api/v1/auth/login",
        json={"email": "admin@shop.local", "password": "admin-password-change-me"},
    ) as r:
        token = (await expect_json(r, 200))["access_token"]
    async with http.get(
        f"{gateway}/api/v1/users",
        params={"limit": "5"},
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        page = await expect_json(r, 200)
    assert any(user["email"] == "admin@shop.local" for user in page["items"])


async def test_a_service_probe_is_reachable_through_the_gateway(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway}/api/v1/users/healthz") as r:
        assert (await expect_json(r, 200))["status"] == "ok"
    async with http.get(f"{gateway}/api/v1/users/readyz") as r:
        assert (await expect_json(r, 200))["status"] == "ready"
