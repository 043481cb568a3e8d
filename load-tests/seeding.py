"""Accounts bulk-loaded straight into the users database, as registration leaves them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shopkit import clock
from shopkit.events import EventStore, NewEvent
from shopkit.ids import new_id


async def accounts(users_db: Any, emails: Sequence[str], password_hash: str) -> list[str]:
    """Customers with these verified emails, all with `password_hash`, their `user.registered`
    events flushed (history nobody need hear of); their ids. Hundreds of registrations through
    the API would measure bcrypt, not the shop."""
    now = clock.now()
    users: list[dict[str, Any]] = []
    parts: dict[str, list[dict[str, Any]]] = {"emails": [], "credentials": [], "access": []}
    streams: dict[str, list[NewEvent]] = {}
    for email in emails:
        user_id = new_id()
        name = email.split("@")[0].replace("-", " ").title()
        users.append(
            {
                "_id": user_id,
                "name": name,
                "phone": None,
                "pending_email": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        parts["emails"].append({"_id": user_id, "email": email, "email_verified": True})
        parts["credentials"].append(
            {"_id": user_id, "password_hash": password_hash, "credentials_version": new_id()}
        )
        parts["access"].append({"_id": user_id, "roles": ["customer"], "disabled": False})
        registered = {"user_id": user_id, "email": email, "name": name, "roles": ["customer"]}
        streams[f"user-{user_id}"] = [
            NewEvent("user.registered", registered, f"registered-{user_id}")
        ]
    # The account's parts first, as registration inserts them (see users.store.PARTS).
    for collection, documents in parts.items():
        await users_db[collection].insert_many(documents)
    await users_db.users.insert_many(users)
    await EventStore(users_db).append_batch(streams)
    return [user["_id"] for user in users]
