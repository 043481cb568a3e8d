"""Helpers shared by the users tests: the admin's credentials and small verbs over the client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from joserfc.jwk import ECKey

from users import links
from users.keys import USERS

ADMIN = {"email": "root@shop.test", "password": "admin-password-1"}
# The service client that mails links, as conftest configures it, and another one.
NOTIFICATIONS = {"client_id": "notifications", "client_secret": "notifications-secret"}
ORDERS = {"client_id": "orders", "client_secret": "orders-secret"}
Client = TestClient[Any, Any]
# A valid address body.
HOME = {
    "recipient": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


def generate_key_set(kid: str) -> str:
    """A fresh one-key signing set, in the form SIGNING_KEYS takes."""
    key = ECKey.generate_key("P-256", parameters={"kid": kid})
    return json.dumps({"keys": [key.as_dict(private=True)]})


async def eventually(read: Callable[[], Awaitable[Any]], attempts: int = 250) -> Any:
    """What `read` answers once it answers something: for work done after a response."""
    for _ in range(attempts):
        found = await read()
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError("the work after the response never showed")


class Api:
    """Small verbs over the client so each test reads as its scenario."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, method: str, path: str, expected: int, **kwargs: Any) -> Any:
        """Send a request and check its status; its JSON body (None for a 204)."""
        response = await self.client.request(method, path, **kwargs)
        assert response.status == expected, f"{method} {path}: {await response.text()}"
        return await response.json() if response.status != 204 else None

    async def add_address(self, auth: dict[str, str], **changes: Any) -> ClientResponse:
        """Add HOME, with `changes`, to the address book of `auth`'s user."""
        return await self.client.post(
            "/api/v1/users/me/addresses", json={**HOME, **changes}, headers=auth
        )

    async def register(self, email: str, password: str = "correct horse", name: str = "Ada") -> Any:
        response = await self.client.post(
            "/api/v1/auth/register", json={"email": email, "password": password, "name": name}
        )
        assert response.status == 201, await response.text()
        return await response.json()

    async def login(self, email: str, password: str = "correct horse", **headers: str) -> Any:
        response = await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
        )
        assert response.status == 200, await response.text()
        return await response.json()

    async def user(self, email: str, password: str = "correct horse") -> dict[str, str]:
        """Register and log in; the Authorization header of the new user."""
        await self.register(email, password)
        tokens = await self.login(email, password)
        return {"Authorization": f"Bearer {tokens['access_token']}"}

    async def admin(self) -> dict[str, str]:
        tokens = await self.login(ADMIN["email"], ADMIN["password"])
        return {"Authorization": f"Bearer {tokens['access_token']}"}

    async def service(self, credentials: Mapping[str, str]) -> dict[str, str]:
        """The Authorization header of a service token for the client of `credentials`."""
        grant = {"grant_type": "client_credentials", **credentials}
        token = await self.call("POST", "/api/v1/auth/token", 200, json=grant)
        return {"Authorization": f"Bearer {token['access_token']}"}

    async def read_link(
        self, data: Mapping[str, Any], credentials: Mapping[str, str] = NOTIFICATIONS
    ) -> ClientResponse:
        """Read the link a verification or reset event names, as the client of `credentials`."""
        return await self.client.get(
            f"/internal/users/{data['user_id']}/links/{data['link_id']}",
            headers=await self.service(credentials),
        )

    def derived_token(self, purpose: links.Purpose, link_id: str) -> str:
        """A link's token derived as users derives it: for a link notifications is no longer given."""
        return links.token(
            self.client.server.app[USERS].settings.password_pepper.value, purpose, link_id
        )

    async def link_token(self, data: Mapping[str, Any]) -> str:
        """The token of the link a verification or reset event names, read as notifications does."""
        response = await self.read_link(data)
        assert response.status == 200, await response.text()
        token: str = (await response.json())["token"]
        return token
