"""Mongo access for inventory beyond the event streams: ledger snapshots and the open-reservation index.

Both are caches the streams can rebuild, never the truth. `stock` holds one snapshot per SKU so a cold
instance folds only the events after it. `open_reservations` lists the reservation attempts that may
still hold stock, each with the moment the sweeper should look at it again (`due_at`); it stays as small
as the number of open reservations, because FerretDB reads the sweeper's range on `due_at` (and its
sort) over the whole collection: it pushes down only top-level equality.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from products.inventory.ledger import Hold, Ledger
from products.inventory.reservation import Line


@dataclass(frozen=True, slots=True)
class OpenReservation:
    order_id: str
    attempt: int
    lines: tuple[Line, ...]
    due_at: datetime


class InventoryStore:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.snapshots = db["stock"]
        self.open = db["open_reservations"]

    async def ensure_indexes(self) -> None:
        # Serves the sweeper's query on MongoDB; every other query here is an `_id` read.
        await self.open.create_index([("due_at", ASCENDING)])

    # --- snapshots

    async def snapshot(self, sku: str) -> tuple[Ledger, int] | None:
        found = await self.snapshots.find_one({"_id": sku})
        if found is None:
            return None
        holds = {h["order_id"]: Hold(h["attempt"], h["quantity"]) for h in found["holds"]}
        return Ledger(found["on_hand"], found["reserved"], holds), int(found["seq"])

    async def save_snapshot(self, sku: str, ledger: Ledger, seq: int) -> None:
        """Write the snapshot unless a newer one is there. Two instances may still cross (FerretDB's
        conditional writes are not atomic), leaving an older snapshot: still a true (state, seq) pair."""
        document = {
            "_id": sku,
            "seq": seq,
            "on_hand": ledger.on_hand,
            "reserved": ledger.reserved,
            # A list, not a map: order ids are opaque and may not be valid field names.
            "holds": [
                {"order_id": order_id, "attempt": hold.attempt, "quantity": hold.quantity}
                for order_id, hold in ledger.holds.items()
            ],
        }
        # The `_id` equality bounds the `seq` range to one document. A duplicate key: a snapshot
        # at this seq or a newer one is already stored.
        with contextlib.suppress(DuplicateKeyError):
            await self.snapshots.replace_one(
                {"_id": sku, "seq": {"$lt": seq}}, document, upsert=True
            )

    # --- open reservations

    async def track(
        self, order_id: str, attempt: int, lines: Sequence[Line], due_at: datetime
    ) -> None:
        with contextlib.suppress(DuplicateKeyError):  # tracked already: a repeated step
            await self.open.insert_one(
                {
                    "_id": _open_id(order_id, attempt),
                    "order_id": order_id,
                    "attempt": attempt,
                    "lines": [line.to_json() for line in lines],
                    "due_at": due_at,
                }
            )

    async def reschedule(self, order_id: str, attempt: int, due_at: datetime) -> None:
        await self.open.update_one(
            {"_id": _open_id(order_id, attempt)}, {"$set": {"due_at": due_at}}
        )

    async def untrack(self, order_id: str, attempt: int) -> None:
        await self.open.delete_one({"_id": _open_id(order_id, attempt)})

    async def due(self, now: datetime, limit: int) -> list[OpenReservation]:
        # The only range and sort of the inventory: FerretDB pushes down neither and reads the
        # whole collection, which stays as small as the reservations still open (each attempt's
        # entry goes once it can hold nothing more). MongoDB serves it from the `due_at` index.
        cursor = self.open.find({"due_at": {"$lte": now}}).sort("due_at", ASCENDING).limit(limit)
        return [
            OpenReservation(
                order_id=doc["order_id"],
                attempt=int(doc["attempt"]),
                lines=tuple(Line(**line) for line in doc["lines"]),
                due_at=doc["due_at"],
            )
            async for doc in cursor
        ]


def _open_id(order_id: str, attempt: int) -> str:
    # One document per attempt: attempts never share (and so never race on) an index entry.
    return f"{order_id}:{attempt}"
