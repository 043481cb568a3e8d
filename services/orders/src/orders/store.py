"""All of orders' Mongo access but the event streams: the order projection and open checkouts.

`orders` holds each order's last known state (a cache of its stream: a reader folds any newer
event in) with the fields lists filter on, each an indexed equality: the customer, and the UTC day
it was placed on (staff lists walk days, newest first). `open_orders` lists every order that may
still need the sweeper (a checkout under way, an unpaid order), from before its first side
effect until it is paid or ended; it stays as small as the orders open at one moment.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from orders.model import Order, from_state, to_state

# The filters a staff list combines with its day, each an equality.
FILTERS = ("status", "payment_status", "fulfilment_status", "email")


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

    async def of_customer(self, user_id: str) -> list[Order]:
        """A customer's orders, newest first (read whole: the cost of one customer's orders)."""
        documents = await self.orders.find({"user_id": user_id}).to_list()
        return _newest_first(documents)

    async def of_day(self, day: str, filters: dict[str, str]) -> list[Order]:
        documents = await self.orders.find({"day": day, **filters}).to_list()
        return _newest_first(documents)

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


def _newest_first(documents: list[dict[str, Any]]) -> list[Order]:
    orders = [from_state(document["state"]) for document in documents]
    orders.sort(key=lambda order: (order.created_at, order.id), reverse=True)
    return orders
