"""The collaborators every use case of the users service works with, built once per app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from shopkit import idempotency
from shopkit.cache import Cache
from shopkit.events import EventStore
from users.history import History
from users.model import User
from users.passwords import Hasher
from users.sessions import Families
from users.settings import UsersSettings
from users.signing import SigningKeys
from users.store import UserStore
from users.throttle import LoginThrottle


@dataclass(frozen=True, slots=True)
class Users:
    settings: UsersSettings
    store: UserStore
    hasher: Hasher
    keys: SigningKeys
    families: Families
    throttle: LoginThrottle
    history: History


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
        history=History(events, store),
    )
