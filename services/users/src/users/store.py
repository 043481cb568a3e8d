"""Mongo access for the users service: accounts, addresses, sessions, single-use tokens, login failures.

Hot reads are `_id` reads or equalities on one indexed top-level field: the only filters FerretDB on
PostgreSQL pushes down to SQL (ranges, `$in`, nested paths and sorts are evaluated in Go over the
whole collection). Ranges appear only after such an equality, or in the background sweeper.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
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
# Written by the address paths, one document per kind, so neither a profile edit nor the other
# kind's change can write an old value back over them.
DEFAULT_ADDRESSES = ("default_shipping_address_id", "default_billing_address_id")
# The longest a single-use token lives (verification links); its use is remembered as long.
TOKEN_LIFETIME = timedelta(days=1)


def _user(doc: dict[str, Any], *guards: dict[str, Any] | None) -> User:
    values = {k: v for k, v in doc.items() if k in _USER_FIELDS and k not in DEFAULT_ADDRESSES}
    for guard in guards:
        values.update({k: v for k, v in (guard or {}).items() if k != "_id"})
    return User(id=doc["_id"], **{**values, "roles": tuple(values["roles"])})


def _address(doc: dict[str, Any]) -> Address:
    return Address(id=doc["_id"], **{k: v for k, v in doc.items() if k in _ADDRESS_FIELDS})


def _session(doc: dict[str, Any], revocation: dict[str, Any] | None) -> Session:
    values = {k: v for k, v in doc.items() if k in _SESSION_FIELDS}
    values["revoked_at"] = revocation["revoked_at"] if revocation else None
    return Session(id=doc["_id"], **values)


async def _put(collection: AsyncCollection[Any], key: str, values: dict[str, Any]) -> None:
    """Set fields of the document `key`, creating it if need be."""
    try:
        await collection.update_one({"_id": key}, {"$set": values}, upsert=True)
    except DuplicateKeyError:  # two first writes raced to insert: the loser sets it now
        await collection.update_one({"_id": key}, {"$set": values})


class UserStore:
    def __init__(self, db: AsyncDatabase[Any], cache: Cache[User] | None = None) -> None:
        # Accounts are read on every authenticated request and changed rarely: worth caching.
        self.cache: Cache[User] = cache or Cache("users", ttl=0)
        self.users = db.users
        self.addresses = db.addresses
        self.default_addresses = db.default_addresses
        self.used_tokens = db.used_tokens
        self.reset_tokens = db.reset_tokens
        self.verifications = db.verifications
        self.login_failures = db.login_failures
        self.sessions = db.sessions
        # Apart from the session, which refreshes rewrite: an insert no write-back can undo.
        self.revocations = db.session_revocations
        self.guards = {name: db[name] for name in GUARDS}

    async def ensure_indexes(self) -> None:
        await self.users.create_index("email", unique=True)  # login, registration
        await self.users.create_index([("roles", ASCENDING), ("_id", ASCENDING)])  # admin list
        await self.users.create_index("events_pending")  # the outbox sweeper
        await self.addresses.create_index([("user_id", ASCENDING), ("_id", ASCENDING)])
        # The address limit: each address holds one of its owner's numbered slots.
        await self.addresses.create_index(
            [("user_id", ASCENDING), ("slot", ASCENDING)], unique=True
        )
        await self.default_addresses.create_index("user_id")
        await self.reset_tokens.create_index("expires_at")  # the sweeper, and below
        await self.verifications.create_index("expires_at")
        await self.used_tokens.create_index("used_at")
        await self.login_failures.create_index([("key", ASCENDING), ("at", ASCENDING)])
        await self.login_failures.create_index("at")
        await self.sessions.create_index([("user_id", ASCENDING), ("_id", DESCENDING)])
        await self.sessions.create_index("expires_at")
        await self.revocations.create_index("user_id")
        await self.revocations.create_index("revoked_at")

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
        defaults = {
            found["kind"]: found["address_id"]
            async for found in self.default_addresses.find({"user_id": doc["_id"]})
        }
        return _user(doc, *guards, defaults)

    async def reload(self, user_id: str) -> User:
        """The account as it is now, after a change: dropped from every instance's cache."""
        await self.cache.invalidate(user_id)
        found = await self.get(user_id)
        if found is None:
            raise LookupError(user_id)
        return found

    async def guard(self, user_id: str, kind: str, values: dict[str, Any]) -> User:
        """Set the password (`credentials`) or the roles and status (`access`) of an account."""
        assert set(values) <= set(GUARDS[kind])
        await _put(self.guards[kind], user_id, values)
        if kind == "access":
            # A copy for the admin search filter only; reads always take the guard's value.
            await self.users.update_one({"_id": user_id}, {"$set": values})
        return await self.reload(user_id)

    async def credentials_version(self, user_id: str) -> str:
        """The account's credentials version, read now (never cached): sessions are checked on it."""
        found = await self.guards["credentials"].find_one({"_id": user_id})
        return str(found.get("credentials_version", "")) if found else ""

    async def set_default_address(self, user_id: str, kind: str, address_id: str) -> None:
        assert kind in DEFAULT_ADDRESSES
        await _put(
            self.default_addresses,
            f"{user_id}:{kind}",
            {"user_id": user_id, "kind": kind, "address_id": address_id},
        )

    async def clear_default_address(self, user_id: str, kind: str, address_id: str) -> None:
        """Drop the default `kind` if it is still `address_id`.

        Not atomic on FerretDB (it reads, filters, then deletes): a new default set in that instant
        can be dropped with it, leaving none, never a wrong one.
        """
        await self.default_addresses.delete_one(
            {"_id": f"{user_id}:{kind}", "address_id": address_id}
        )

    # --- email verification links, keyed by the hash of their token

    async def insert_verification(
        self, token_hash: str, user_id: str, email: str, expires_at: datetime
    ) -> None:
        await self.verifications.insert_one(
            {"_id": token_hash, "user_id": user_id, "email": email, "expires_at": expires_at}
        )

    async def verification(self, token_hash: str) -> dict[str, Any] | None:
        return await self.verifications.find_one({"_id": token_hash})

    async def update(self, user_id: str, changes: dict[str, Any]) -> User:
        """Set profile fields (never the guarded ones nor the default addresses: see above)."""
        assert not set(changes) & {field for names in GUARDS.values() for field in names}
        assert not set(changes) & set(DEFAULT_ADDRESSES)
        try:
            doc = await self.users.find_one_and_update(
                {"_id": user_id},
                {"$set": {**changes, "updated_at": clock.now()}},
                return_document=ReturnDocument.AFTER,
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
        # An admin page, not a hot path: on FerretDB the `_id` range and the sort read every
        # account (of the role, when one is asked for); on MongoDB the (roles, _id) index serves it.
        cursor = self.users.find(criteria).sort("_id", ASCENDING).limit(limit)
        return [await self._with_guards(doc) async for doc in cursor]

    # --- outbox of registration (events written in the same insert as the account)

    async def with_pending_events(self, older_than: datetime) -> list[dict[str, Any]]:
        # By the indexed flag alone: few accounts hold events at any moment (registrations under
        # way, or left by a crash), so their age is checked here rather than in a range filter.
        cursor = self.users.find(
            {"events_pending": True}, {"pending_events": 1, "created_at": 1}
        ).limit(500)
        return [
            doc
            async for doc in cursor
            if doc.get("pending_events") and doc["created_at"] < older_than
        ]

    async def clear_pending_events(self, user_id: str) -> None:
        await self.users.update_one(
            {"_id": user_id}, {"$unset": {"pending_events": "", "events_pending": ""}}
        )

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

    async def purge_expired_tokens(self, now: datetime) -> None:
        """Forget expired links, the uses of links that have expired anyway, and old failures.

        Range deletes: on FerretDB each reads its whole collection, which a sweeper running every
        few minutes can afford (and these collections hold only what the last day left).
        """
        await self.reset_tokens.delete_many({"expires_at": {"$lt": now}})
        await self.verifications.delete_many({"expires_at": {"$lt": now}})
        await self.used_tokens.delete_many({"used_at": {"$lt": now - TOKEN_LIFETIME}})
        await self.login_failures.delete_many({"at": {"$lt": now - timedelta(days=1)}})

    # --- login failures: one insert per failure, counted in a window (exact under concurrency)

    async def record_attempt(self, keys: list[str]) -> list[Any]:
        now = clock.now()
        result = await self.login_failures.insert_many([{"key": key, "at": now} for key in keys])
        return list(result.inserted_ids)

    async def forget_attempt(self, ids: list[Any]) -> None:
        # One `_id` delete each: FerretDB would read the whole collection for an `$in`.
        for failure_id in ids:
            await self.login_failures.delete_one({"_id": failure_id})

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

    async def insert_address(self, doc: dict[str, Any], limit: int) -> Address | None:
        """Insert the address in a free slot of its owner's `limit`; None when all are taken.

        The unique (user_id, slot) index makes the insert the claim: of concurrent adds, one per
        slot gets in, the others try the next free slot, so no count can be passed.
        """
        taken = {
            found.get("slot")
            async for found in self.addresses.find({"user_id": doc["user_id"]}, {"slot": 1})
        }
        for slot in range(limit):
            if slot in taken:
                continue
            try:
                await self.addresses.insert_one({**doc, "slot": slot})
            except DuplicateKeyError:
                continue  # another add took it since we read
            return _address(doc)
        return None

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
    # A session document is inserted at login and then written by refreshes only (`last_used_at`);
    # its revocation is a document of its own, inserted once, so no refresh can write it away.

    async def insert_session(self, session_id: str, fields: dict[str, Any]) -> None:
        await self.sessions.insert_one({"_id": session_id, **fields})

    async def note_session_use(self, session_id: str, at: datetime) -> None:
        await self.sessions.update_one({"_id": session_id}, {"$set": {"last_used_at": at}})

    async def revoke_session(self, session_id: str, user_id: str, reason: str) -> None:
        with contextlib.suppress(DuplicateKeyError):  # revoked already: the first moment stands
            await self.revocations.insert_one(
                {"_id": session_id, "user_id": user_id, "revoked_at": clock.now(), "reason": reason}
            )

    async def session(self, session_id: str) -> Session | None:
        doc = await self.sessions.find_one({"_id": session_id})
        if doc is None:
            return None
        return _session(doc, await self.revocations.find_one({"_id": session_id}))

    async def active_sessions(self, user_id: str) -> list[Session]:
        revoked = {
            found["_id"] async for found in self.revocations.find({"user_id": user_id}, {"_id": 1})
        }
        now = clock.now()
        # The user's own sessions only, which the sweeper keeps to the live ones and the recent.
        found = [
            _session(doc, None)
            async for doc in self.sessions.find({"user_id": user_id})
            if doc["_id"] not in revoked and doc["expires_at"] > now
        ]
        return sorted(found, key=lambda session: session.id, reverse=True)[:100]

    async def ended_sessions(self, before: datetime, limit: int) -> list[str]:
        """Sessions that expired, or were revoked, before `before`: at most `limit` of each.

        Range filters, so on FerretDB each reads its whole collection: for the sweeper only, every
        few minutes, over collections it keeps to the sessions of the last refresh-token lifetime.
        """
        expired = self.sessions.find({"expires_at": {"$lt": before}}, {"_id": 1}).limit(limit)
        revoked = self.revocations.find({"revoked_at": {"$lt": before}}, {"_id": 1}).limit(limit)
        ended = [doc["_id"] async for doc in expired] + [doc["_id"] async for doc in revoked]
        return list(dict.fromkeys(ended))

    async def forget_session(self, session_id: str) -> None:
        # The revocation last: a sweep cut short here leaves it, so the next one finds it again.
        await self.sessions.delete_one({"_id": session_id})
        await self.revocations.delete_one({"_id": session_id})
