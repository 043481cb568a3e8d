"""Mongo access for the users service: accounts, addresses, single-use tokens and login failures."""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shopkit import clock
from shopkit.cache import Cache
from users.model import Address, Session, User

_USER_FIELDS = {f.name for f in fields(User)}
_ADDRESS_FIELDS = {f.name for f in fields(Address)}
_SESSION_FIELDS = {f.name for f in fields(Session)}


class EmailTaken(Exception):
    pass


# On FerretDB an update writes the whole document back, so concurrent updates of one document can
# undo each other. What guards the account (its password, roles and status) therefore lives in small
# documents of its own, written only by the password and admin paths; the account document keeps the
# values it was registered with, and these override them. The credentials version changes with every
# password, in the same document (so one write sets both): a session opened under another is dead.
GUARDS = {
    "credentials": ("password_hash", "credentials_version"),
    "access": ("roles", "disabled"),
}


def _user(doc: dict[str, Any], *guards: dict[str, Any] | None) -> User:
    values = {k: v for k, v in doc.items() if k in _USER_FIELDS}
    for guard in guards:
        values.update({k: v for k, v in (guard or {}).items() if k != "_id"})
    return User(id=doc["_id"], **{**values, "roles": tuple(values["roles"])})


def _address(doc: dict[str, Any]) -> Address:
    return Address(id=doc["_id"], **{k: v for k, v in doc.items() if k in _ADDRESS_FIELDS})


def _session(doc: dict[str, Any]) -> Session:
    return Session(id=doc["_id"], **{k: v for k, v in doc.items() if k in _SESSION_FIELDS})


class UserStore:
    def __init__(self, db: AsyncDatabase[Any], cache: Cache[User] | None = None) -> None:
        # Accounts are read on every authenticated request and changed rarely: worth caching.
        self.cache: Cache[User] = cache or Cache("users", ttl=0)
        self.users = db.users
        self.addresses = db.addresses
        self.used_tokens = db.used_tokens
        self.reset_tokens = db.reset_tokens
        self.login_failures = db.login_failures
        self.sessions = db.sessions
        self.guards = {name: db[name] for name in GUARDS}

    async def ensure_indexes(self) -> None:
        await self.users.create_index("email", unique=True)
        await self.users.create_index("verification.token_hash")
        await self.addresses.create_index([("user_id", ASCENDING), ("_id", ASCENDING)])
        await self.reset_tokens.create_index("expires_at")
        await self.login_failures.create_index([("key", ASCENDING), ("at", ASCENDING)])
        await self.sessions.create_index([("user_id", ASCENDING), ("_id", DESCENDING)])

    # --- accounts

    async def insert_user(self, doc: dict[str, Any]) -> User:
        try:
            await self.users.insert_one(doc)
        except DuplicateKeyError:
            raise EmailTaken() from None
        return _user(doc)

    async def get(self, user_id: str) -> User | None:
        found = self.cache.get(user_id)
        if found is not None:
            return found
        epoch = self.cache.epoch()
        doc = await self.users.find_one({"_id": user_id})
        if doc is None:
            return None
        found = await self._with_guards(doc)
        self.cache.put(user_id, found, epoch)
        return found

    async def by_email(self, email: str) -> User | None:
        doc = await self.users.find_one({"email": email})
        return await self._with_guards(doc) if doc else None

    async def _with_guards(self, doc: dict[str, Any]) -> User:
        guards = [
            await collection.find_one({"_id": doc["_id"]}) for collection in self.guards.values()
        ]
        return _user(doc, *guards)

    async def guard(self, user_id: str, kind: str, values: dict[str, Any]) -> User:
        """Set the password (`credentials`) or the roles and status (`access`) of an account."""
        assert set(values) <= set(GUARDS[kind])
        collection = self.guards[kind]
        try:
            await collection.update_one({"_id": user_id}, {"$set": values}, upsert=True)
        except DuplicateKeyError:  # two first writes raced to insert: the loser sets it now
            await collection.update_one({"_id": user_id}, {"$set": values})
        if kind == "access":
            # A copy for the admin search filter only; reads always take the guard's value.
            await self.users.update_one({"_id": user_id}, {"$set": values})
        await self.cache.invalidate(user_id)
        found = await self.get(user_id)
        if found is None:
            raise LookupError(user_id)
        return found

    async def credentials_version(self, user_id: str) -> str:
        """The account's credentials version, read now (never cached): sessions are checked on it."""
        found = await self.guards["credentials"].find_one({"_id": user_id})
        return str(found.get("credentials_version", "")) if found else ""

    async def by_verification(self, token_hash: str) -> dict[str, Any] | None:
        return await self.users.find_one({"verification.token_hash": token_hash})

    async def update(
        self, user_id: str, changes: dict[str, Any], unset: tuple[str, ...] = ()
    ) -> User:
        """Set profile fields (never the guarded ones: see GUARDS)."""
        assert not set(changes) & {field for names in GUARDS.values() for field in names}
        update: dict[str, Any] = {"$set": {**changes, "updated_at": clock.now()}}
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        try:
            doc = await self.users.find_one_and_update(
                {"_id": user_id}, update, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:
            raise EmailTaken() from None
        finally:
            await self.cache.invalidate(user_id)
        if doc is None:
            raise LookupError(user_id)
        return await self._with_guards(doc)

    async def search(
        self, *, after: str | None, limit: int, query: str | None, role: str | None
    ) -> list[User]:
        criteria: dict[str, Any] = {}
        if after:
            criteria["_id"] = {"$gt": after}
        if query:
            pattern = re.escape(query.lower())
            criteria["$or"] = [
                {"email": {"$regex": pattern}},
                {"name": {"$regex": pattern, "$options": "i"}},
            ]
        if role:
            criteria["roles"] = role
        cursor = self.users.find(criteria).sort("_id", ASCENDING).limit(limit)
        return [await self._with_guards(doc) async for doc in cursor]

    # --- outbox of registration (events written in the same insert as the account)

    async def with_pending_events(self, older_than: datetime) -> list[dict[str, Any]]:
        cursor = self.users.find(
            {"pending_events.0": {"$exists": True}, "created_at": {"$lt": older_than}},
            {"pending_events": 1},
        ).limit(100)
        return [doc async for doc in cursor]

    async def clear_pending_events(self, user_id: str) -> None:
        await self.users.update_one({"_id": user_id}, {"$unset": {"pending_events": ""}})

    # --- single-use tokens (verification, reset): an insert under a unique id is the only safe "once"

    async def use_token(self, token_hash: str) -> bool:
        try:
            await self.used_tokens.insert_one({"_id": token_hash, "used_at": clock.now()})
        except DuplicateKeyError:
            return False
        return True

    async def insert_reset_token(self, token_hash: str, user_id: str, expires_at: datetime) -> None:
        await self.reset_tokens.insert_one(
            {
                "_id": token_hash,
                "user_id": user_id,
                "expires_at": expires_at,
                "created_at": clock.now(),
            }
        )

    async def reset_token(self, token_hash: str) -> dict[str, Any] | None:
        return await self.reset_tokens.find_one({"_id": token_hash})

    async def purge_expired_tokens(self, before: datetime) -> None:
        await self.reset_tokens.delete_many({"expires_at": {"$lt": before}})
        await self.login_failures.delete_many({"at": {"$lt": before - timedelta(days=1)}})

    # --- login failures: one insert per failure, counted in a window (exact under concurrency)

    async def record_attempt(self, keys: list[str]) -> list[Any]:
        now = clock.now()
        result = await self.login_failures.insert_many([{"key": key, "at": now} for key in keys])
        return list(result.inserted_ids)

    async def forget_attempt(self, ids: list[Any]) -> None:
        await self.login_failures.delete_many({"_id": {"$in": ids}})

    async def failures_since(self, key: str, since: datetime) -> tuple[int, datetime | None]:
        criteria = {"key": key, "at": {"$gte": since}}
        count = await self.login_failures.count_documents(criteria)
        oldest = await self.login_failures.find_one(criteria, sort=[("at", ASCENDING)])
        return count, (oldest["at"] if oldest else None)

    async def clear_failures(self, key: str) -> None:
        await self.login_failures.delete_many({"key": key})

    # --- addresses

    async def addresses_of(self, user_id: str) -> list[Address]:
        cursor = self.addresses.find({"user_id": user_id}).sort("_id", ASCENDING).limit(100)
        return [_address(doc) async for doc in cursor]

    async def count_addresses(self, user_id: str) -> int:
        return await self.addresses.count_documents({"user_id": user_id})

    async def insert_address(self, doc: dict[str, Any]) -> Address:
        await self.addresses.insert_one(doc)
        return _address(doc)

    async def address(self, user_id: str, address_id: str) -> Address | None:
        # Always scoped by owner: another user's address is simply not found.
        doc = await self.addresses.find_one({"_id": address_id, "user_id": user_id})
        return _address(doc) if doc else None

    async def update_address(
        self, user_id: str, address_id: str, changes: dict[str, Any]
    ) -> Address | None:
        update: dict[str, Any] = {}
        to_set = {k: v for k, v in changes.items() if v is not None}
        to_unset = [k for k, v in changes.items() if v is None]
        if to_set:
            update["$set"] = to_set
        if to_unset:
            update["$unset"] = dict.fromkeys(to_unset, "")
        if not update:
            return await self.address(user_id, address_id)
        doc = await self.addresses.find_one_and_update(
            {"_id": address_id, "user_id": user_id}, update, return_document=ReturnDocument.AFTER
        )
        return _address(doc) if doc else None

    async def delete_address(self, user_id: str, address_id: str) -> bool:
        result = await self.addresses.delete_one({"_id": address_id, "user_id": user_id})
        return result.deleted_count == 1

    # --- sessions (projection of the refresh-token family streams)

    async def upsert_session(self, session_id: str, fields: dict[str, Any]) -> None:
        await self.sessions.update_one({"_id": session_id}, {"$set": fields}, upsert=True)

    async def session(self, session_id: str) -> Session | None:
        doc = await self.sessions.find_one({"_id": session_id})
        return _session(doc) if doc else None

    async def active_sessions(self, user_id: str) -> list[Session]:
        cursor = (
            self.sessions.find(
                {"user_id": user_id, "revoked_at": None, "expires_at": {"$gt": clock.now()}}
            )
            .sort("_id", DESCENDING)
            .limit(100)
        )
        return [_session(doc) async for doc in cursor]
