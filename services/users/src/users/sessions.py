"""Refresh-token families: each login is a stream of issued, rotated and revoked events.

A refresh token is `<family id>.<secret>` and only its SHA-256 is stored. Rotation appends at the next
sequence number, so of two concurrent uses of one token exactly one wins; the loser then finds its
token spent, which is reuse: the whole family is revoked.

Each family carries the account's credentials version it was opened under (in its `issued` event).
A password change stores a new version before it revokes the sessions, so a family whose version is
no longer the account's is dead, whether or not a revocation reached it: a login that read the old
password while it changed, or a password change that stopped before revoking.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from shopkit import clock
from shopkit.events import Decision, Event, EventStore, NewEvent, Outcome, StreamBusy, decide
from shopkit.ids import new_id
from users.errors import (
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    SessionNotFound,
)
from users.store import UserStore

log = logging.getLogger(__name__)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _stream(family_id: str) -> str:
    return f"family-{family_id}"


class FamilyEvent(StrEnum):
    """A family's event types. They stay in its private stream (`token_events`, never relayed):
    what other services hear of is `session.revoked`, which users appends to the account's stream."""

    ISSUED = "issued"
    CARRIED_OVER = "carried-over"
    ROTATED = "rotated"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Family:
    user_id: str = ""
    current: str = ""
    spent: frozenset[str] = frozenset()
    expires_at: datetime | None = None
    revoked: bool = False
    credentials: str = ""

    def apply(self, event: Event) -> Family:
        if event.type == FamilyEvent.ISSUED:
            return replace(
                self,
                user_id=event.data["user_id"],
                current=event.data["token_hash"],
                expires_at=datetime.fromisoformat(event.data["expires_at"]),
                credentials=event.data.get("credentials", ""),
            )
        if event.type == FamilyEvent.CARRIED_OVER:
            return replace(self, credentials=event.data["credentials"])
        if event.type == FamilyEvent.ROTATED:
            return replace(
                self, spent=self.spent | {self.current}, current=event.data["token_hash"]
            )
        if event.type == FamilyEvent.REVOKED:
            return replace(self, revoked=True)
        return self


@dataclass(frozen=True, slots=True)
class Issued:
    family_id: str
    user_id: str
    refresh_token: str


# Told of every revoked session (id, user id, reason), before the family records its revocation.
Revoked = Callable[[str, str, str], Awaitable[None]]


class Families:
    def __init__(
        self, events: EventStore, store: UserStore, ttl: int, revoked: Revoked | None = None
    ) -> None:
        self._events, self._store, self._ttl = events, store, timedelta(seconds=ttl)
        self._revoked = revoked

    async def ensure_indexes(self) -> None:
        await self._events.ensure_indexes()

    async def _load(self, family_id: str) -> Family:
        family = Family()
        for event in await self._events.load(_stream(family_id)):
            family = family.apply(event)
        return family

    async def _decide(self, family_id: str, decision: Decision[Family]) -> Outcome[Family]:
        # From an empty family: each decision refuses or passes on it, and that makes `decide`
        # read the stream, so it costs the one read a load would.
        return await decide(self._events, _stream(family_id), Family(), Family.apply, decision)

    async def start(
        self, user_id: str, credentials: str, user_agent: str | None, ip: str | None
    ) -> Issued:
        """Open a family for a login that checked the password of credentials version `credentials`."""
        family_id = new_id()
        token = f"{family_id}.{secrets.token_urlsafe(32)}"
        now = clock.now()
        expires_at = now + self._ttl
        # The session is listed before its family exists, so a password change or a disable, which
        # revoke what is listed, can never miss a family; a listed session with no family is inert.
        await self._store.insert_session(
            family_id,
            {
                "user_id": user_id,
                "created_at": now,
                "last_used_at": now,
                "expires_at": expires_at,
                "user_agent": (user_agent or "")[:256] or None,
                "ip": ip,
            },
        )
        await self._events.append(
            _stream(family_id),
            0,
            FamilyEvent.ISSUED,
            {
                "user_id": user_id,
                "token_hash": token_hash(token),
                "expires_at": expires_at.isoformat(),
                "credentials": credentials,
            },
        )
        # The password may have changed since the login read it, and that change's revocations
        # may have run before this family existed: then it must not outlive the login.
        if await self._store.credentials_version(user_id) != credentials:
            await self.revoke(family_id, reason="password-changed")
            raise InvalidCredentials("the password changed while signing in")
        return Issued(family_id, user_id, token)

    async def carry_over(self, family_id: str, user_id: str, old: str, new: str) -> None:
        """Keep a family opened under credentials `old` alive under `new` (the session that changed
        the password); a family of another account or version, or revoked, is left as it is."""

        def carry(family: Family) -> NewEvent | None:
            if family.user_id != user_id or family.revoked or family.credentials != old:
                return None
            return NewEvent(FamilyEvent.CARRIED_OVER, {"credentials": new})

        try:
            await self._decide(family_id, carry)
        except StreamBusy:
            # The session then dies with the old password, like the others: the user signs in
            # again. The password change itself has succeeded, so this is no reason to fail it.
            log.warning(
                "session %s was not carried over to the new password: its stream kept changing",
                family_id,
            )

    async def rotate(self, token: str) -> Issued:
        family_id = token.partition(".")[0]
        presented = token_hash(token)
        fresh = f"{family_id}.{secrets.token_urlsafe(32)}"

        async def rotation(family: Family) -> NewEvent:
            if not family.user_id or family.revoked:
                raise InvalidRefreshToken()
            if family.expires_at is not None and family.expires_at <= clock.now():
                raise InvalidRefreshToken("the session has expired; log in again")
            # Also what the loser of two concurrent uses of one token finds once it has read
            # the winner's rotation.
            if presented in family.spent:
                raise RefreshTokenReused()
            if presented != family.current:
                raise InvalidRefreshToken()
            if family.credentials != await self._store.credentials_version(family.user_id):
                raise InvalidRefreshToken("the password changed; log in again")
            return NewEvent(FamilyEvent.ROTATED, {"token_hash": token_hash(fresh)})

        try:
            rotated = await self._decide(family_id, rotation)
        except RefreshTokenReused:
            await self.revoke(family_id, reason="reuse")
            raise
        await self._store.note_session_use(family_id, clock.now())
        return Issued(family_id, rotated.state.user_id, fresh)

    async def owner(self, token: str) -> tuple[str, str]:
        """The (family id, user id) a refresh token belongs to, whether or not it is current."""
        family_id = token.partition(".")[0]
        family = await self._load(family_id)
        presented = token_hash(token)
        if not family.user_id or (presented != family.current and presented not in family.spent):
            raise InvalidRefreshToken()
        return family_id, family.user_id

    async def revoke(self, family_id: str, reason: str) -> None:
        async def revocation(family: Family) -> NewEvent | None:
            if not family.user_id:
                raise SessionNotFound()
            if self._revoked is not None:
                # Broadcast before the family reads revoked: a crash after that would leave no
                # one to broadcast it (reuse detection and revoke_all are never retried). Also
                # when it was revoked already; the fact's id, from the family, publishes it once.
                await self._revoked(family_id, family.user_id, reason)
            return None if family.revoked else NewEvent(FamilyEvent.REVOKED, {"reason": reason})

        revoked = await self._decide(family_id, revocation)
        await self._store.revoke_session(family_id, revoked.state.user_id, reason)

    async def revoke_all(self, user_id: str, reason: str, keep: str | None = None) -> None:
        """Revoke every live session of the user (all of them, not a listed page), but `keep`."""
        for session in await self._store.active_sessions(user_id, limit=None):
            if session.id != keep:
                with contextlib.suppress(SessionNotFound):  # listed, but its login never finished
                    await self.revoke(session.id, reason)

    async def purge(self, now: datetime) -> int:
        """Forget the families whose day to go has passed (see `UserStore.ended_sessions`); how
        many it forgot.

        A forgotten family's tokens are refused like a revoked one's. Its events go first and its
        session after, so a purge cut short is found and finished by the next one.
        """
        forgotten = 0
        async for family_id in self._store.ended_sessions(now):
            await self._events.delete_stream(_stream(family_id))
            await self._store.forget_session(family_id)
            forgotten += 1
        return forgotten
