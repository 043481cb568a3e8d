"""Mongo access for the users service: accounts, addresses, sessions, single-use tokens, login failures.

Hot reads are `_id` reads or equalities on one indexed top-level field: the only filters FerretDB on
PostgreSQL pushes down to SQL (ranges, `$in`, nested paths and sorts are evaluated in Go over the
whole collection). Ranges appear only after such an equality, or on an admin page; purges delete by
an indexed day (`shopkit.sweeps`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shopkit import clock, sweeps
from shopkit.cache import Cache
from users.model import (
    Address,
    PendingRegistration,
    PendingResetRequest,
    ResetLink,
    Session,
    User,
    VerificationLink,
)

_USER_FIELDS = {f.name for f in fields(User)}
_ADDRESS_FIELDS = {f.name for f in fields(Address)}
_SESSION_FIELDS = {f.name for f in fields(Session)}
# How long an ended session stays listed in the database (for support) before it is forgotten.
ENDED_RETENTION = timedelta(days=1)
# Each list of sessions shows the newest this many.
SESSIONS_LISTED = 100


class EmailTaken(Exception):
    pass


# On FerretDB an update writes the whole document back, so two writers of one document can undo
# each other's change. So each part of an account has one kind of writer: the account document
# (`users`) holds the profile, written by profile edits only; each part below is a document of its
# own under the account's `_id`, written by its path only. All of them are inserted at registration,
# the parts before the account document: an account without its parts is not one.
PARTS = {
    # Written by email verification; its unique index makes the email an account's login.
    "emails": ("email", "email_verified"),
    # Written by the password paths. The version changes with every password, in the same write:
    # a session opened under another version is dead.
    "credentials": ("password_hash", "credentials_version"),
    # Written by the admin paths; the admin list by role reads it.
    "access": ("roles", "disabled"),
}
# Written by the address paths, one document per kind, so neither a profile edit nor the other
# kind's change can write an old value back over them.
DEFAULT_ADDRESSES = ("default_shipping_address_id", "default_billing_address_id")
# The account document: what its owner edits (an admin may edit the name too), and when.
EDITABLE = ("name", "phone", "pending_email")
PROFILE = (*EDITABLE, "created_at", "updated_at")


def _user(doc: dict[str, Any], parts: dict[str, Any]) -> User:
    values = {k: v for k, v in doc.items() if k in PROFILE}
    values.update({k: v for k, v in parts.items() if k in _USER_FIELDS})
    if values.get("pending_email") == values["email"]:  # the email it waited for is verified
        values["pending_email"] = None
    return User(id=doc["_id"], **{**values, "roles": tuple(values["roles"])})


def _matches(user: User, query: str | None) -> bool:
    """Whether the account's email or name holds `query` (case aside), as `search` filters."""
    return not query or query.lower() in user.email or query.lower() in user.name.lower()


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
        self.parts = {name: db[name] for name in PARTS}
        # Registrations under way: each holds its events until they are in the stream.
        self.registrations = db.registrations
        self.addresses = db.addresses
        self.default_addresses = db.default_addresses
        self.used_tokens = db.used_tokens
        self.reset_tokens = db.reset_tokens
        self.verifications = db.verifications
        # Throttled attempts (failed logins, wrong current passwords, reset requests), by key.
        self.login_failures = db.login_failures
        # Password reset requests answered and not yet carried out (`users.resets`).
        self.reset_requests = db.reset_requests
        self.sessions = db.sessions
        # Apart from the session, which refreshes rewrite: an insert no write-back can undo.
        self.revocations = db.session_revocations

    async def ensure_indexes(self) -> None:
        await self.parts["emails"].create_index("email", unique=True)  # login, registration
        await self.parts["access"].create_index([("roles", ASCENDING), ("_id", ASCENDING)])
        await self.addresses.create_index([("user_id", ASCENDING), ("_id", ASCENDING)])
        # The address limit: each address holds one of its owner's numbered slots.
        await self.addresses.create_index(
            [("user_id", ASCENDING), ("slot", ASCENDING)], unique=True
        )
        await self.default_addresses.create_index("user_id")
        await self.login_failures.create_index([("key", ASCENDING), ("at", ASCENDING)])
        await self.sessions.create_index([("user_id", ASCENDING), ("_id", DESCENDING)])
        await self.revocations.create_index("user_id")
        for purged in (
            self.reset_tokens,
            self.verifications,
            self.used_tokens,
            self.login_failures,
            self.sessions,
            self.revocations,
        ):
            await sweeps.ensure_index(purged)  # see `purge` and `ended_sessions`

    # --- accounts

    async def create_account(
        self, profile: dict[str, Any], parts: dict[str, dict[str, Any]], events: list[Any]
    ) -> User:
        """Register: the account's events, its parts, then its profile: the account from then on.

        The events are kept with the registration until `registered` (after they are appended to
        the stream); one left behind by a crash is finished or undone by `unfinished_registrations`.
        The email's part is the claim: of two registrations of one email, one inserts it.
        """
        user_id = profile["_id"]
        await self.registrations.insert_one({"_id": user_id, "events": events, "at": clock.now()})
        try:
            await self.parts["emails"].insert_one({"_id": user_id, **parts["emails"]})
        except DuplicateKeyError:
            await self.registrations.delete_one({"_id": user_id})
            raise EmailTaken() from None
        for name in ("credentials", "access"):
            await self.parts[name].insert_one({"_id": user_id, **parts[name]})
        await self.users.insert_one(profile)
        return _user(profile, {k: v for part in parts.values() for k, v in part.items()})

    async def registered(self, user_id: str) -> None:
        """The registration's events are in the stream: it is done."""
        await self.registrations.delete_one({"_id": user_id})

    async def unfinished_registrations(
        self, older_than: datetime
    ) -> AsyncIterator[PendingRegistration]:
        """Registrations begun before `older_than` and not done, with whether their account exists.

        Reads the collection whole: it holds only registrations under way, or left by a crash.
        """
        left = [doc async for doc in self.registrations.find() if doc["at"] < older_than]
        for doc in left:
            has_account = await self.users.find_one({"_id": doc["_id"]}, {"_id": 1}) is not None
            yield PendingRegistration(doc["_id"], doc["events"], doc["at"], has_account)

    async def abandon_registration(self, user_id: str) -> None:
        """Undo a registration that died before its account was inserted: free its email."""
        for part in self.parts.values():
            await part.delete_one({"_id": user_id})
        await self.registrations.delete_one({"_id": user_id})

    async def get(self, user_id: str) -> User | None:
        return await self.cache.get_or_load(user_id, lambda: self._load(user_id))

    async def fresh(self, user_id: str) -> User | None:
        """The account read now, past the cache: what a token is about to be signed from."""
        return await self._load(user_id)

    async def by_email(self, email: str) -> User | None:
        """The account whose login `email` is, read now (never cached: login checks its password)."""
        part = await self.parts["emails"].find_one({"email": email}, {"_id": 1})
        return await self._load(part["_id"]) if part else None

    async def _load(self, user_id: str) -> User | None:
        doc = await self.users.find_one({"_id": user_id})
        return await self._assemble(doc) if doc is not None else None

    async def _assemble(self, doc: dict[str, Any]) -> User | None:
        """The account of this profile, with its parts (None if one is missing)."""
        parts: dict[str, Any] = {}
        for collection in self.parts.values():
            part = await collection.find_one({"_id": doc["_id"]})
            if part is None:  # undone by the sweeper after its registration stalled for an hour
                return None
            parts.update(part)
        async for found in self.default_addresses.find({"user_id": doc["_id"]}):
            parts[found["kind"]] = found["address_id"]
        return _user(doc, parts)

    async def reload(self, user_id: str) -> User:
        """The account as it is now, after a change: dropped from every instance's cache."""
        await self.cache.invalidate(user_id)
        found = await self.get(user_id)
        if found is None:
            raise LookupError(user_id)
        return found

    async def guard(self, user_id: str, kind: str, values: dict[str, Any]) -> User:
        """Set the email (`emails`), the password (`credentials`) or the roles and status
        (`access`) of an account; EmailTaken if another account's login is that email."""
        assert set(values) <= set(PARTS[kind])
        try:
            await self.parts[kind].update_one({"_id": user_id}, {"$set": values})
        except DuplicateKeyError:
            raise EmailTaken() from None
        return await self.reload(user_id)

    async def credentials_version(self, user_id: str) -> str:
        """The account's credentials version, read now (never cached): sessions are checked on it."""
        found = await self.parts["credentials"].find_one({"_id": user_id})
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

    async def update(self, user_id: str, changes: dict[str, Any]) -> User:
        """Set profile fields: the only write of the account document after registration."""
        assert set(changes) <= set(EDITABLE)
        try:
            doc = await self.users.find_one_and_update(
                {"_id": user_id},
                {"$set": {**changes, "updated_at": clock.now()}},
                return_document=ReturnDocument.AFTER,
            )
        finally:
            await self.cache.invalidate(user_id)
        found = await self._assemble(doc) if doc is not None else None
        if found is None:
            raise LookupError(user_id)
        return found

    async def search(
        self, *, after: str | None, limit: int, query: str | None, role: str | None
    ) -> list[User]:
        """An admin page, not a hot path: the accounts after `after`, by id, that match.

        By role, it reads the role's access parts (an equality on their index) and then each
        account by `_id`; else it reads the accounts (and the logins, for `query`) whole on
        FerretDB, where the `_id` range, the patterns and the sort are evaluated in Go.
        """
        position: dict[str, Any] = {"_id": {"$gt": after}} if after else {}
        if role:
            found: list[User] = []
            holders = self.parts["access"].find({"roles": role, **position}, {"_id": 1})
            async with holders.sort("_id", ASCENDING) as cursor:
                async for holder in cursor:
                    user = await self._load(holder["_id"])
                    if user is not None and _matches(user, query):
                        found.append(user)
                        if len(found) == limit:
                            break
            return found
        if query:
            # The first `limit` of the union are among the first `limit` of each.
            pattern = re.escape(query.lower())
            by_email = self.parts["emails"].find(
                {"email": {"$regex": pattern}, **position}, {"_id": 1}
            )
            by_name = self.users.find(
                {"name": {"$regex": pattern, "$options": "i"}, **position}, {"_id": 1}
            )
            ids = {
                doc["_id"]
                for cursor in (by_email, by_name)
                async for doc in cursor.sort("_id", ASCENDING).limit(limit)
            }
        else:
            accounts = self.users.find(position, {"_id": 1}).sort("_id", ASCENDING).limit(limit)
            ids = {doc["_id"] async for doc in accounts}
        loaded = [await self._load(user_id) for user_id in sorted(ids)[:limit]]
        return [user for user in loaded if user is not None]

    # --- single-use links (verification, reset), keyed by the hash of their token; each carries
    # the day it may go (the day it expires), and so does the record of its use

    async def insert_verification(
        self, token_hash: str, user_id: str, email: str, expires_at: datetime
    ) -> None:
        await self.verifications.insert_one(
            {
                "_id": token_hash,
                "user_id": user_id,
                "email": email,
                "expires_at": expires_at,
                sweeps.FIELD: sweeps.purge_on(expires_at),
            }
        )

    async def verification(self, token_hash: str) -> VerificationLink | None:
        doc = await self.verifications.find_one({"_id": token_hash})
        if doc is None:
            return None
        return VerificationLink(doc["user_id"], doc["email"], doc["expires_at"])

    async def insert_reset_token(self, token_hash: str, user_id: str, expires_at: datetime) -> None:
        """Store a reset link; the same link again is a no-op (the first one stands)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.reset_tokens.insert_one(
                {
                    "_id": token_hash,
                    "user_id": user_id,
                    "expires_at": expires_at,
                    "created_at": clock.now(),
                    sweeps.FIELD: sweeps.purge_on(expires_at),
                }
            )

    async def reset_token(self, token_hash: str) -> ResetLink | None:
        doc = await self.reset_tokens.find_one({"_id": token_hash})
        return None if doc is None else ResetLink(doc["user_id"], doc["expires_at"])

    async def token_used(self, token_hash: str) -> bool:
        return await self.used_tokens.find_one({"_id": token_hash}, {"_id": 1}) is not None

    async def use_token(self, token_hash: str, expires_at: datetime) -> bool:
        """Use the link that expires at `expires_at`, once: an insert under a unique id is the only
        safe "once". Its use is remembered until the link itself is purged, never less."""
        try:
            await self.used_tokens.insert_one(
                {
                    "_id": token_hash,
                    "used_at": clock.now(),
                    sweeps.FIELD: sweeps.purge_on(expires_at),
                }
            )
        except DuplicateKeyError:
            return False
        return True

    # --- password reset requests, each recorded before its answer and deleted once carried out

    async def insert_reset_request(self, request_id: str, email: str) -> None:
        await self.reset_requests.insert_one({"_id": request_id, "email": email, "at": clock.now()})

    async def reset_request_done(self, request_id: str) -> None:
        await self.reset_requests.delete_one({"_id": request_id})

    async def unfinished_reset_requests(self, older_than: datetime) -> list[PendingResetRequest]:
        """Requests recorded before `older_than` and not carried out.

        Reads the collection whole: it holds only requests under way, or left by a failure.
        """
        return [
            PendingResetRequest(doc["_id"], doc["email"], doc["at"])
            async for doc in self.reset_requests.find()
            if doc["at"] < older_than
        ]

    async def purge(self, now: datetime) -> None:
        """Forget the links, their uses and the login failures whose day has passed."""
        for collection in (
            self.reset_tokens,
            self.verifications,
            self.used_tokens,
            self.login_failures,
        ):
            await sweeps.purge(collection, now)

    # --- login failures: one insert per failure, counted in a window (exact under concurrency)

    async def record_attempt(self, keys: list[str], kept: timedelta) -> list[Any]:
        """Record a failure under each key, kept at least `kept` (the window it is counted in)."""
        now = clock.now()
        result = await self.login_failures.insert_many(
            [{"key": key, "at": now, sweeps.FIELD: sweeps.purge_on(now + kept)} for key in keys]
        )
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
    # its revocation is a document of its own, inserted once, so no refresh can write it away. Each
    # carries the day it may go: a day after the session expires, or is revoked.

    async def insert_session(self, session_id: str, fields: dict[str, Any]) -> None:
        purge_on = sweeps.purge_on(fields["expires_at"] + ENDED_RETENTION)
        await self.sessions.insert_one({"_id": session_id, **fields, sweeps.FIELD: purge_on})

    async def note_session_use(self, session_id: str, at: datetime) -> None:
        await self.sessions.update_one({"_id": session_id}, {"$set": {"last_used_at": at}})

    async def revoke_session(self, session_id: str, user_id: str, reason: str) -> None:
        now = clock.now()
        with contextlib.suppress(DuplicateKeyError):  # revoked already: the first moment stands
            await self.revocations.insert_one(
                {
                    "_id": session_id,
                    "user_id": user_id,
                    "revoked_at": now,
                    "reason": reason,
                    sweeps.FIELD: sweeps.purge_on(now + ENDED_RETENTION),
                }
            )

    async def session(self, session_id: str) -> Session | None:
        doc = await self.sessions.find_one({"_id": session_id})
        if doc is None:
            return None
        return _session(doc, await self.revocations.find_one({"_id": session_id}))

    async def active_sessions(
        self, user_id: str, limit: int | None = SESSIONS_LISTED
    ) -> list[Session]:
        """The user's live sessions, newest first: the newest `limit`, or all of them (None)."""
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
        found.sort(key=lambda session: session.id, reverse=True)
        return found if limit is None else found[:limit]

    async def ended_sessions(self, now: datetime) -> AsyncIterator[str]:
        """Sessions whose day to go has passed: expired, or revoked, over `ENDED_RETENTION` ago.

        A session is found again until `forget_session` deletes it, so a purge cut short resumes.
        """
        for collection in (self.sessions, self.revocations):
            async for doc in sweeps.due(collection, now):
                yield doc["_id"]

    async def forget_session(self, session_id: str) -> None:
        # The revocation last: a sweep cut short here leaves it, so the next one finds it again.
        await self.sessions.delete_one({"_id": session_id})
        await self.revocations.delete_one({"_id": session_id})
