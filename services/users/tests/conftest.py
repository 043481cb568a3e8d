"""Fixtures for the users service: the real app on loopback against this test's own database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from users_support import ADMIN, Api, Client, generate_key_set

from shopkit.settings import load
from users.app import create_app
from users.settings import UsersSettings


@pytest.fixture(scope="session")
def signing_keys() -> str:
    return generate_key_set("test-1")


@pytest.fixture
def users_env(service_env: dict[str, str], signing_keys: str) -> dict[str, str]:
    return {
        **service_env,
        "SIGNING_KEYS": signing_keys,
        "PASSWORD_PEPPER": "test-pepper",
        # The lowest bcrypt cost keeps the suite fast; the default of 12 has its own test.
        "PASSWORD_HASH_COST": "4",
        "SERVICE_CLIENTS": (
            "orders:orders-secret,products:products-secret,notifications:notifications-secret"
        ),
        "ADMIN_EMAIL": ADMIN["email"],
        "ADMIN_PASSWORD": ADMIN["password"],
    }


@pytest.fixture
async def start_users(
    serve: Callable[[Any], Awaitable[Client]], users_env: dict[str, str]
) -> Callable[..., Awaitable[Client]]:
    async def start(**overrides: str) -> Client:
        return await serve(create_app(load(UsersSettings, {**users_env, **overrides})))

    return start


@pytest.fixture
async def client(start_users: Callable[..., Awaitable[Client]]) -> Client:
    return await start_users()


@pytest.fixture
def api(client: Client) -> Api:
    return Api(client)
