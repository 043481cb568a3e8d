"""All of orders' Mongo access but the event streams: the order projection and open checkouts.

`orders` holds each order's last known state (a cache of its stream: a reader folds any newer
event in) with the fields lists filter on, each an indexed equality: the customer, and the UTC day
it was placed on (staff lists walk days, newest first). `open_orders` lists every order that may
still need the sweeper (a checkout under way, an unpaid order), from before its first side
effect until it is paid or ended; it stays as small as the orders open at one moment.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from orders.model import Order, from_state, to_state

# The filters a list combines with its customer or day, each an equality.
FILTERS = ("status", "payment_status", "fulfilment_status", "email")
# Where an order stands in a list: when it was placed, and its id.
Position = tuple[datetime, str]


@dataclass(frozen=True, slots=True)
class OpenOrder:
    order_id: str
    due_at: datetime
    cart_id: str | None


class OrderStore:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.orders = db["orders"]
        self.open = db["open_orders"]
        self.drafts = db["order_drafts"]

    async def ensure_indexes(self) -> None:
        await self.orders.create_index("user_id")
        await self.orders.create_index("day")
        await self.orders.create_index("number")
        await self.open.create_index("due_at")

    # --- the projection

    async def get(self, order_id: str) -> Order | None:
        document = await self.orders.find_one({"_id": order_id})
        return from_state(document["state"]) if document is not None else None

    async def save(self, order: Order) -> None:
        """Keep `order` unless a newer version is kept already. (On FerretDB the conditional
        replace is read-then-write: two savers at once may leave the older, which the next save
        or any reader's catch-up mends; the stream, not this copy, is the truth.)"""
        document = {
            "_id": order.id,
            "version": order.version,
            "user_id": order.user_id,
            "number": order.number,
            "day": order.created_at.date().isoformat(),
            "created_at": order.created_at,
            "status": order.status.value,
            "payment_status": order.payment_status.value,
            "fulfilment_status": order.fulfilment_status.value,
            "email": order.email,
            "state": to_state(order),
        }
        with contextlib.suppress(DuplicateKeyError):  # a newer version is there
            await self.orders.replace_one(
                {"_id": order.id, "version": {"$lt": order.version}}, document, upsert=True
            )

    async def positions(self, where: dict[str, Any]) -> list[Position]:
        """Where each order `where` selects (top-level equalities: the customer, or a day, and
        the filters) stands in a list: its placing time and id, read without the orders
        themselves, so a page costs the positions of what it walks and the orders it shows."""
        cursor = self.orders.find(where, {"created_at": 1})
        return [(_aware(document["created_at"]), document["_id"]) async for document in cursor]

    async def many(self, order_ids: list[str]) -> list[Order]:
        """The orders of `order_ids`, in that order (one `_id` read each: `$in` is never pushed
        down by FerretDB)."""
        found = await asyncio.gather(*(self.get(order_id) for order_id in order_ids))
        return [order for order in found if order is not None]

    async def by_number(self, number: str) -> Order | None:
        document = await self.orders.find_one({"number": number})
        return from_state(document["state"]) if document is not None else None

    # --- orders the sweeper watches

    async def track(self, order_id: str, cart_id: str, due_at: datetime) -> None:
        with contextlib.suppress(DuplicateKeyError):  # a retried checkout: tracked already
            await self.open.insert_one({"_id": order_id, "cart_id": cart_id, "due_at": due_at})

    async def reschedule(self, order_id: str, due_at: datetime) -> None:
        await self.open.update_one({"_id": order_id}, {"$set": {"due_at": due_at}})

    async def untrack(self, order_id: str) -> None:
        await self.open.delete_one({"_id": order_id})
        await self.drafts.delete_one({"_id": order_id})

    async def keep_draft(self, order_id: str, draft: dict[str, Any]) -> dict[str, Any]:
        """Keep the checkout's priced order, unless an earlier attempt kept one: the kept one."""
        try:
            await self.drafts.insert_one({"_id": order_id, "draft": draft})
        except DuplicateKeyError:
            kept = await self.draft_of(order_id)
            if kept is not None:
                return kept
        return draft

    async def draft_of(self, order_id: str) -> dict[str, Any] | None:
        document = await self.drafts.find_one({"_id": order_id})
        return dict(document["draft"]) if document is not None else None

    async def due(self, now: datetime, limit: int) -> list[OpenOrder]:
        # A range and a sort: FerretDB reads the collection whole, which stays as small as the
        # orders open at one moment; MongoDB serves it from the `due_at` index.
        cursor = self.open.find({"due_at": {"$lte": now}}).sort("due_at", ASCENDING).limit(limit)
        return [OpenOrder(doc["_id"], doc["due_at"], doc.get("cart_id")) async for doc in cursor]


def _aware(moment: datetime) -> datetime:
    # Stored datetimes come back naive when a client is not tz-aware.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
