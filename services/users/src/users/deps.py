"""The collaborators every use case of the users service works with, built once per app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from shopkit import idempotency
from shopkit.cache import Cache
from shopkit.events import EventStore
from users.model import User
from users.outbox import Outbox
from users.passwords import Hasher
from users.sessions import Families
from users.settings import UsersSettings
from users.signing import SigningKeys
from users.store import UserStore
from users.throttle import LoginThrottle, PasswordGuessThrottle, ResetThrottle


@dataclass(frozen=True, slots=True)
class Users:
    settings: UsersSettings
    store: UserStore
    hasher: Hasher
    keys: SigningKeys
    families: Families
    throttle: LoginThrottle
    password_guesses: PasswordGuessThrottle
    reset_requests: ResetThrottle
    outbox: Outbox


async def open_users(
    db: AsyncDatabase[Any],
    settings: UsersSettings,
    keys: SigningKeys,
    cache: Cache[User] | None = None,
) -> Users:
    """The collaborators on `db`, with every index they query by."""
    store = UserStore(db, cache)
    events = EventStore(db)
    families = Families(
        EventStore(db, collection="token_events"), store, settings.refresh_token_ttl
    )
    await store.ensure_indexes()
    await events.ensure_indexes()
    await families.ensure_indexes()
    await idempotency.ensure_indexes(db)
    return Users(
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
        outbox=Outbox(events, store),
    )
