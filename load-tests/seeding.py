"""Accounts bulk-loaded straight into the users database, as registration leaves them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shopkit import clock
from shopkit.events import EventStore, NewEvent
from shopkit.ids import new_id
from users.accounts import account_documents
from users.events import UserEvent, UserRegistered
from users.model import Role

CUSTOMER = (Role.CUSTOMER,)


async def accounts(users_db: Any, emails: Sequence[str], password_hash: str) -> list[str]:
    """Customers with these verified emails, all with `password_hash`, their `user.registered`
    events flushed (history nobody need hear of); their ids. Hundreds of registrations through
    the API would measure bcrypt, not the shop."""
    now = clock.now()
    users: list[dict[str, Any]] = []
    parts: dict[str, list[dict[str, Any]]] = {}
    streams: dict[str, list[NewEvent]] = {}
    for email in emails:
        user_id = new_id()
        name = email.split("@")[0].replace("-", " ").title()
        profile, account_parts = account_documents(
            user_id,
            email=email,
            name=name,
            password_hash=password_hash,
            roles=CUSTOMER,
            verified=True,
            now=now,
        )
        users.append(profile)
        for collection, part in account_parts.items():
            parts.setdefault(collection, []).append({"_id": user_id, **part})
        registered = UserRegistered(user_id, email, name, CUSTOMER).to_json()
        streams[f"user-{user_id}"] = [
            NewEvent(UserEvent.REGISTERED, registered, f"registered-{user_id}")
        ]
    # The account's parts first, as registration inserts them (see users.store.PARTS).
    for collection, documents in parts.items():
        await users_db[collection].insert_many(documents)
    await users_db.users.insert_many(users)
    await EventStore(users_db).append_batch(streams)
    return [user["_id"] for user in users]
