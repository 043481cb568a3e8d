"""Throttles of what an attacker can repeat: logins, guesses of the current password, reset mails."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from shopkit import clock
from shopkit.problems import TooManyRequests
from users.store import UserStore


class Throttle:
    """At most `limits[scope]` attempts per key of each scope within the window.

    Each attempt is recorded first and counted after, so parallel attempts cannot slip past the
    limit; `forget` takes back the records of one that turned out harmless (a good password).
    """

    def __init__(
        self, store: UserStore, limits: Mapping[str, int], window: int, refusal: str
    ) -> None:
        self._store = store
        self._limits = dict(limits)
        self._window = timedelta(seconds=window)
        self._refusal = refusal

    async def attempt(self, keys: Mapping[str, str]) -> list[Any]:
        """Record an attempt under the key of each scope; 429 when one is past its limit.

        Answers the records of this attempt, for `forget`.
        """
        assert set(keys) == set(self._limits)
        recorded = await self._store.record_attempt(list(keys.values()), self._window)
        now = clock.now()
        for scope, key in keys.items():
            count, oldest = await self._store.failures_since(key, now - self._window)
            if count > self._limits[scope] and oldest is not None:
                retry_after = int((oldest + self._window - now).total_seconds()) + 1
                raise TooManyRequests(retry_after, self._refusal)
        return recorded

    async def forget(self, recorded: list[Any], *, clear: str | None = None) -> None:
        """Take back an attempt's records, and every attempt under the key `clear`."""
        await self._store.forget_attempt(recorded)
        if clear is not None:
            await self._store.clear_failures(clear)


class LoginThrottle:
    """Failed logins per (account, client) and per client, so an attacker elsewhere cannot lock a
    user out."""

    def __init__(self, store: UserStore, per_account: int, per_client: int, window: int) -> None:
        self._throttle = Throttle(
            store,
            {"account": per_account, "client": per_client},
            window,
            "too many failed logins; try again later",
        )

    @staticmethod
    def _keys(email: str, client: str) -> dict[str, str]:
        # The account key includes the client: failures from an attacker's address never
        # throttle the real user logging in from theirs.
        return {"account": f"account:{email}|{client}", "client": f"client:{client}"}

    async def attempt(self, email: str, client: str) -> list[Any]:
        """Record the attempt as a failure until `succeeded` takes it back."""
        return await self._throttle.attempt(self._keys(email, client))

    async def succeeded(self, email: str, client: str, recorded: list[Any]) -> None:
        await self._throttle.forget(recorded, clear=self._keys(email, client)["account"])


class PasswordGuessThrottle:
    """Wrong current passwords given to change the password, per account: a stolen access token
    must not become an oracle for the password it cannot see."""

    def __init__(self, store: UserStore, per_account: int, window: int) -> None:
        self._throttle = Throttle(
            store,
            {"account": per_account},
            window,
            "too many wrong current passwords; try again later",
        )

    async def attempt(self, user_id: str) -> list[Any]:
        return await self._throttle.attempt({"account": f"password:{user_id}"})

    async def succeeded(self, user_id: str, recorded: list[Any]) -> None:
        await self._throttle.forget(recorded, clear=f"password:{user_id}")


class ResetThrottle:
    """Password reset requests per address and per client, so the endpoint cannot bomb a mailbox.

    Counted whether or not the account exists, so a refusal reveals nothing about it.
    """

    def __init__(self, store: UserStore, per_address: int, per_client: int, window: int) -> None:
        self._throttle = Throttle(
            store,
            {"address": per_address, "client": per_client},
            window,
            "too many password reset requests; try again later",
        )

    async def attempt(self, email: str, client: str) -> None:
        await self._throttle.attempt(
            {"address": f"reset:{email}", "client": f"reset-client:{client}"}
        )
