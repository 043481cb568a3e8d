"""Login throttling per (account, client) and per client, so an attacker elsewhere cannot lock a user out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shopkit import clock
from shopkit.problems import TooManyRequests
from users.store import UserStore


class LoginThrottle:
    def __init__(self, store: UserStore, per_account: int, per_client: int, window: int) -> None:
        self._store = store
        self._limits = {"account": per_account, "client": per_client}
        self._window = timedelta(seconds=window)

    @staticmethod
    def _keys(email: str, client: str) -> dict[str, str]:
        # The account key includes the client: failures from an attacker's address never
        # throttle the real user logging in from theirs.
        return {"account": f"account:{email}|{client}", "client": f"client:{client}"}

    async def attempt(self, email: str, client: str) -> list[Any]:
        """Record the attempt first and then count it, so parallel guesses cannot slip past the limit.

        Answers the records of this attempt; `succeeded` takes them back.
        """
        keys = self._keys(email, client)
        recorded = await self._store.record_attempt(list(keys.values()), self._window)
        now = clock.now()
        for scope, key in keys.items():
            count, oldest = await self._store.failures_since(key, now - self._window)
            if count > self._limits[scope] and oldest is not None:
                retry_after = int((oldest + self._window - now).total_seconds()) + 1
                raise TooManyRequests(retry_after, "too many failed logins; try again later")
        return recorded

    async def succeeded(self, email: str, client: str, recorded: list[Any]) -> None:
        await self._store.forget_attempt(recorded)
        await self._store.clear_failures(self._keys(email, client)["account"])
