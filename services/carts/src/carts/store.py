"""Mongo access beyond the carts' streams: each cart's record, users' carts, merges under way.

A cart's record (`carts`) is written when the cart is created, before its first event, so every
stream has a record for the sweeper to find it by (`purge_on`, see `shopkit.sweeps`); it also holds
a snapshot of the cart, so a cold read folds only the events after it. A user's cart is named in
`user_carts`, claimed by an insert (two devices creating it at once end with one cart). A merge
under way is noted in `merges` first, so one cut short is finished by the sweeper.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from carts.model import Cart
from shopkit import clock, sweeps


@dataclass(frozen=True, slots=True)
class CartRecord:
    id: str
    owner: str | None  # the user's id; None for a guest cart
    snapshot: Cart
    purge_on: str


@dataclass(frozen=True, slots=True)
class Merge:
    guest_cart_id: str
    into: str
    user_id: str
    started_at: datetime


class CartStore:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.carts = db["carts"]
        self.owners = db["user_carts"]
        self.merges = db["merges"]

    async def ensure_indexes(self) -> None:
        await sweeps.ensure_index(self.carts)

    # --- carts

    async def create(self, cart_id: str, owner: str | None, purge_on: str) -> None:
        document = _document(cart_id, owner, Cart(), purge_on)
        with contextlib.suppress(DuplicateKeyError):  # created already: a repeated step
            await self.carts.insert_one(document)

    async def get(self, cart_id: str) -> CartRecord | None:
        found = await self.carts.find_one({"_id": cart_id})
        return _record(found) if found is not None else None

    async def save(self, cart_id: str, owner: str | None, cart: Cart, purge_on: str) -> None:
        """Write the snapshot unless a newer one is there. Two instances may still cross (FerretDB's
        conditional writes are not atomic), leaving an older snapshot: still a true state."""
        # The `_id` equality bounds the `version` range to one document; a duplicate key means a
        # snapshot this new or newer is stored.
        with contextlib.suppress(DuplicateKeyError):
            await self.carts.replace_one(
                {"_id": cart_id, "version": {"$lt": cart.version}},
                _document(cart_id, owner, cart, purge_on),
                upsert=True,
            )

    async def reschedule(self, cart_id: str, purge_on: str) -> None:
        await self.carts.update_one({"_id": cart_id}, {"$set": {sweeps.FIELD: purge_on}})

    async def delete(self, cart_id: str) -> None:
        await self.carts.delete_one({"_id": cart_id})

    def due(self, now: datetime, hours: int) -> AsyncIterator[CartRecord]:
        async def records() -> AsyncIterator[CartRecord]:
            async for document in sweeps.due(self.carts, now, hours=hours):
                yield _record(document)

        return records()

    # --- users' carts

    async def user_cart(self, user_id: str) -> str | None:
        found = await self.owners.find_one({"_id": user_id})
        return str(found["cart_id"]) if found is not None else None

    async def claim_user_cart(self, user_id: str, cart_id: str) -> str:
        """Name `cart_id` the user's cart unless another is named already; the one named."""
        try:
            await self.owners.insert_one({"_id": user_id, "cart_id": cart_id})
        except DuplicateKeyError:
            winner = await self.user_cart(user_id)
            if winner is None:  # released in between: try once more
                return await self.claim_user_cart(user_id, cart_id)
            return winner
        return cart_id

    async def release_user_cart(self, user_id: str, cart_id: str) -> None:
        # Only if it still names this cart: a new one named since stays.
        await self.owners.delete_one({"_id": user_id, "cart_id": cart_id})

    # --- merges under way

    async def merge_started(self, guest_cart_id: str, into: str, user_id: str) -> None:
        document = {"_id": guest_cart_id, "into": into, "user": user_id, "started_at": clock.now()}
        with contextlib.suppress(DuplicateKeyError):
            await self.merges.insert_one(document)

    async def merge_finished(self, guest_cart_id: str) -> None:
        await self.merges.delete_one({"_id": guest_cart_id})

    async def merges_under_way(self, limit: int) -> list[Merge]:
        # Unfiltered with a limit, the one bounded read FerretDB pushes down; the collection only
        # ever holds the merges running now and any a crash cut short.
        documents = await self.merges.find({}).limit(limit).to_list()
        return [Merge(doc["_id"], doc["into"], doc["user"], doc["started_at"]) for doc in documents]


def _document(cart_id: str, owner: str | None, cart: Cart, purge_on: str) -> dict[str, Any]:
    return {
        "_id": cart_id,
        "owner": owner,
        "version": cart.version,
        "cart": cart.to_json(),
        sweeps.FIELD: purge_on,
    }


def _record(document: dict[str, Any]) -> CartRecord:
    return CartRecord(
        id=document["_id"],
        owner=document["owner"],
        snapshot=Cart.from_json(document["cart"]),
        purge_on=document[sweeps.FIELD],
    )
