"""Revoked access tokens: the facts the token issuer broadcasts, and each process's set of them.

Access tokens are verified locally, so disabling an account or ending a session would otherwise
take effect only when its tokens expire. The issuer (users) appends a revocation fact to its outbox;
the relay publishes it to JetStream; every process follows those subjects with an ordered consumer
and keeps what is still in force in memory: a subject's tokens issued up to a moment, or a session's
tokens. An entry is forgotten once every token it refuses has expired. A process that starts replays
the last `REPLAY_WINDOW` of facts before it serves (see `follow`), so a restart forgets nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import nats.errors
from aiohttp import web
from nats.aio.msg import Msg

from shopkit import broker, clock
from shopkit.events import Payload
from shopkit.keys import JETSTREAM, METRICS, REVOCATIONS, SETTINGS

if TYPE_CHECKING:
    from nats.js import JetStreamContext

__all__ = [
    "ACCESS_REVOKED",
    "ISSUER",
    "REPLAY_WINDOW",
    "SESSION_REVOKED",
    "AccessRevoked",
    "Revocations",
    "SessionRevoked",
    "access_revoked",
    "follow",
    "ready",
    "session_revoked",
]

log = logging.getLogger("shopkit.revocations")
# The service that signs access tokens, and so publishes their revocations.
ISSUER = "users"
# The two revocation event types. users publishes them, but they are defined here, not in
# users/events.py: their consumer is every service's verifier, in this kit, which must not import a
# service; users/events.py refers to them. docs/architecture.md lists them with users' events.
# A subject's tokens issued up to `issued_before` are refused (account disabled, roles changed).
ACCESS_REVOKED = "access.revoked"
# A session's tokens (claim `sid`) are refused (logout, refresh-token reuse, password change).
SESSION_REVOKED = "session.revoked"
SUBJECTS = broker.subject(ISSUER, "*.revoked")
# How far back a starting process replays: at least the longest access-token lifetime (users
# refuses to start with a longer ACCESS_TOKEN_TTL). Facts past their expiry are skipped on arrival.
REPLAY_WINDOW = timedelta(hours=1)
# How long a starting process waits to have replayed the window before it serves anyway (and
# reports not ready until it has).
CATCH_UP_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class AccessRevoked(Payload):
    """`access.revoked`: `user_id`'s tokens issued up to `issued_before` are refused until
    `expires_at`, when the last of them expires."""

    user_id: str
    issued_before: str
    expires_at: str
    reason: str


@dataclass(frozen=True, slots=True)
class SessionRevoked(Payload):
    """`session.revoked`: every token of session `session_id` is refused until `expires_at`."""

    session_id: str
    user_id: str
    expires_at: str
    reason: str


def access_revoked(
    user_id: str, issued_before: datetime, ttl: int, reason: str
) -> tuple[str, dict[str, Any]]:
    """The event (type, data) refusing `user_id`'s tokens issued up to `issued_before`, whose
    lifetime is at most `ttl` seconds."""
    expires_at = issued_before + timedelta(seconds=ttl)
    fact = AccessRevoked(user_id, clock.rfc3339(issued_before), clock.rfc3339(expires_at), reason)
    return ACCESS_REVOKED, fact.to_json()


def session_revoked(
    session_id: str, user_id: str, at: datetime, ttl: int, reason: str
) -> tuple[str, dict[str, Any]]:
    """The event (type, data) refusing every token of session `session_id` (revoked at `at`)."""
    fact = SessionRevoked(session_id, user_id, clock.rfc3339(at + timedelta(seconds=ttl)), reason)
    return SESSION_REVOKED, fact.to_json()


def _epoch(value: Any) -> float:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class Revocations:
    """The revocations in force in this process: subjects with a cut-off, and sessions.

    Each entry is kept until its tokens have expired, plus the verifier's leeway (which accepts
    them that much longer).
    """

    def __init__(self, leeway: float = 30.0) -> None:
        self._leeway = leeway
        self._subjects: dict[str, tuple[float, float]] = {}  # subject -> (issued before, until)
        self._sessions: dict[str, float] = {}  # session id -> until
        self._next_purge = 0.0
        self.caught_up = asyncio.Event()

    def revoke_subject(self, subject: str, issued_before: float, expires_at: float) -> None:
        until = expires_at + self._leeway
        if until <= time.time():
            return
        cut, kept = self._subjects.get(subject, (0.0, 0.0))
        # Facts may arrive in any order (a replay after a later one): the latest cut-off holds.
        self._subjects[subject] = (max(cut, issued_before), max(kept, until))
        self._purge()

    def revoke_session(self, session_id: str, expires_at: float) -> None:
        until = expires_at + self._leeway
        if until <= time.time():
            return
        self._sessions[session_id] = max(self._sessions.get(session_id, 0.0), until)
        self._purge()

    def refuses(self, subject: str, session_id: str | None, issued_at: float) -> bool:
        """Whether a token of `subject` and `session_id` issued at `issued_at` is revoked."""
        now = time.time()
        found = self._subjects.get(subject)
        if found is not None and found[1] > now and issued_at <= found[0]:
            return True
        if session_id is None:
            return False
        until = self._sessions.get(session_id)
        return until is not None and until > now

    def size(self, kind: str) -> int:
        """How many entries of `kind` (subject or session) are in force: the gauge's value."""
        self._purge(force=True)
        return len(self._subjects if kind == "subject" else self._sessions)

    def apply(self, event_type: str, data: dict[str, Any]) -> None:
        """Take in one published fact; ValueError (or KeyError) when it is malformed."""
        if event_type == ACCESS_REVOKED:
            access = AccessRevoked.from_json(data)
            self.revoke_subject(
                str(access.user_id), _epoch(access.issued_before), _epoch(access.expires_at)
            )
        elif event_type == SESSION_REVOKED:
            session = SessionRevoked.from_json(data)
            self.revoke_session(str(session.session_id), _epoch(session.expires_at))

    def _purge(self, force: bool = False) -> None:
        now = time.time()
        if not force and now < self._next_purge:
            return
        self._next_purge = now + 10.0
        self._subjects = {k: v for k, v in self._subjects.items() if v[1] > now}
        self._sessions = {k: v for k, v in self._sessions.items() if v > now}


async def _subscribe(
    js: JetStreamContext, revocations: Revocations
) -> JetStreamContext.PushSubscription:
    """Follow the issuer's revocation subjects from `REPLAY_WINDOW` ago; `caught_up` is set once
    the replay is in."""

    async def received(message: Msg) -> None:
        try:
            body = json.loads(message.data)
            revocations.apply(str(body["type"]), dict(body["data"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed revocation on %s", message.subject)
        if message.metadata.num_pending == 0:
            revocations.caught_up.set()

    subscription = await broker.follow(
        js, ISSUER, SUBJECTS, received, since=clock.now() - REPLAY_WINDOW
    )
    info = await subscription.consumer_info()
    if info.num_pending == 0 and (info.delivered is None or info.delivered.consumer_seq == 0):
        revocations.caught_up.set()  # nothing to replay
    return subscription


async def follow(app: web.Application) -> AsyncIterator[None]:
    """A cleanup_ctx entry feeding `app[REVOCATIONS]` from the broker while the app lives."""
    revocations = app[REVOCATIONS]
    gauge = app[METRICS].token_revocations
    service = app[SETTINGS].service_name
    gauge.labels(service, "subject").set_function(lambda: revocations.size("subject"))
    gauge.labels(service, "session").set_function(lambda: revocations.size("session"))
    subscription = await _subscribe(app[JETSTREAM], revocations)
    try:
        await asyncio.wait_for(revocations.caught_up.wait(), timeout=CATCH_UP_SECONDS)
    except TimeoutError:
        log.warning("serving before the revocations of the last hour were replayed")
    try:
        yield
    finally:
        try:
            await subscription.unsubscribe()
        except nats.errors.Error:
            log.info("could not unsubscribe from revocations; the connection closes anyway")


async def ready(app: web.Application) -> None:
    if not app[REVOCATIONS].caught_up.is_set():
        raise ConnectionError("the recent revocations are not replayed yet")
