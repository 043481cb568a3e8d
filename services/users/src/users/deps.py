"""The collaborators every use case of the users service works with, built once per app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from shopkit import clock, revocations
from shopkit.cache import Cache
from shopkit.commits import AfterCommit
from shopkit.events import EventStore
from users.history import History, session_revoked_id
from users.model import User
from users.passwords import Hasher
from users.sessions import Families
from users.settings import UsersSettings
from users.signing import SigningKeys
from users.store import UserStore
from users.throttle import LoginThrottle, PasswordGuessThrottle, ResetThrottle


@dataclass(frozen=True, slots=True)
class Collaborators:
    """What the use cases of the users service work with: its settings, stores, keys, throttles."""

    settings: UsersSettings
    store: UserStore
    hasher: Hasher
    keys: SigningKeys
    families: Families
    throttle: LoginThrottle
    password_guesses: PasswordGuessThrottle
    reset_requests: ResetThrottle
    history: History
    after_commit: AfterCommit = field(default_factory=AfterCommit)


async def open_collaborators(
    db: AsyncDatabase[Any],
    settings: UsersSettings,
    keys: SigningKeys,
    cache: Cache[User] | None = None,
    after_commit: AfterCommit | None = None,
) -> Collaborators:
    """The collaborators on `db`, with every index they query by."""
    store = UserStore(db, cache)
    events = EventStore(db)
    history = History(events, store)

    async def session_revoked(session_id: str, user_id: str, reason: str) -> None:
        # Every service then refuses the session's access tokens, not only its refresh token.
        kind, data = revocations.session_revoked(
            session_id, user_id, clock.now(), settings.access_token_ttl, reason
        )
        await history.record(user_id, session_revoked_id(session_id), kind, data)

    families = Families(
        EventStore(db, collection="token_events"),
        store,
        settings.refresh_token_ttl,
        revoked=session_revoked,
    )
    await store.ensure_indexes()
    await events.ensure_indexes()
    await families.ensure_indexes()
    return Collaborators(
        settings=settings,
        store=store,
        hasher=Hasher(settings.password_pepper.value, settings.password_hash_cost),
        keys=keys,
        families=families,
        throttle=LoginThrottle(
            store,
            settings.login_failures_per_account,
            settings.login_failures_per_client,
            settings.login_window,
        ),
        password_guesses=PasswordGuessThrottle(
            store, settings.password_guesses_per_account, settings.login_window
        ),
        reset_requests=ResetThrottle(
            store,
            settings.reset_requests_per_address,
            settings.reset_requests_per_client,
            settings.reset_window,
        ),
        history=history,
        after_commit=after_commit or AfterCommit(),
    )
