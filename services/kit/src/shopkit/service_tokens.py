"""The token a service shows when it calls another on its own behalf (role `service`).

users grants it for the service's client credentials (OAuth 2 client credentials, RFC 6749 4.4),
short-lived; it is reused until most of its life has passed, and concurrent callers share one
grant request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from shopkit.http import ServiceClient
from shopkit.problems import ServiceUnavailable

__all__ = ["ClientCredentials", "ServiceTokens", "StaticToken"]

# Renewed once this share of its life has passed, so a token never expires mid-call.
RENEW_AT = 0.7
GRANT_PATH = "/api/v1/auth/token"


class ServiceTokens(Protocol):
    async def token(self) -> str: ...

    def forget(self) -> None: ...


class ClientCredentials:
    def __init__(self, users: ServiceClient, client_id: str, client_secret: str) -> None:
        self._users = users
        self._credentials = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        }
        self._token = ""
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if time.monotonic() < self._renew_at:
            return self._token
        async with self._lock:
            if time.monotonic() >= self._renew_at:
                await self._grant()
        return self._token

    async def _grant(self) -> None:
        answer = await self._users.request("POST", GRANT_PATH, json=self._credentials)
        token, lifetime = answer.fields.get("access_token"), answer.fields.get("expires_in")
        if answer.status != 200 or not isinstance(token, str) or not isinstance(lifetime, int):
            # Our credentials are refused: a deployment fault no caller can mend by retrying.
            raise ServiceUnavailable("this service could not obtain its service token")
        self._token = token
        self._renew_at = time.monotonic() + RENEW_AT * lifetime

    def forget(self) -> None:
        """Drop the token (an upstream refused it): the next call asks for a new one."""
        self._renew_at = 0.0


class StaticToken:
    """A token given up front (tests, or a deployment that mints its own)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token

    def forget(self) -> None:
        pass
