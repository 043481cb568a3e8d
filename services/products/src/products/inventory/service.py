"""Inventory, as routes, the order consumer and the sweeper use it: stock moves and reservations.

How it stays right without transactions is in architecture.md ("Consistency without transactions"),
and in the modules that do each part: `stock` (each SKU's ledger stream and its cache), `admission`
(in-process promises), `reservations` (an order's reservation stream and its line events) and
`sweeper`. What keeps it fast on FerretDB, where each stream event is its own `_id` lookup (FerretDB on
PostgreSQL pushes down top-level equality only, no range or `$in`) and each write a round trip:
decisions append before they read; concurrent readers of one SKU share one read; in-process promises
stop a burst of orders for one SKU from writing anything for the refusals the level already implies;
snapshots in `stock` spare a cold instance from folding a SKU's whole history.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

from products.inventory import ledger
from products.inventory.errors import SkuNotFound, StockNotTracked, UnknownSkus
from products.inventory.ledger import StockLevel
from products.inventory.metrics import InventoryMetrics
from products.inventory.reservation import Reservation, ReservationState
from products.inventory.reservations import Reservations
from products.inventory.stock import SNAPSHOT_EVERY, Stock
from products.inventory.store import InventoryStore
from products.inventory.sweeper import Sweeper
from products.skus import SkuDirectory
from shopkit.events import Event, EventStore

log = logging.getLogger("products.inventory")


class Inventory:
    def __init__(
        self,
        events: EventStore,
        reservations: EventStore,
        store: InventoryStore,
        skus: SkuDirectory,
        *,
        reservation_ttl: int,
        low_stock_threshold: int,
        metrics: InventoryMetrics | None = None,
    ) -> None:
        self._skus = skus
        self.stock = Stock(events, store, low_stock_threshold=low_stock_threshold)
        self.reservations = Reservations(
            reservations, store, self.stock, reservation_ttl=reservation_ttl, metrics=metrics
        )
        self._sweeper = Sweeper(self.reservations, store, metrics)

    # --- reads

    async def tracked(self, sku: str) -> bool:
        """Whether the SKU tracks stock; SkuNotFound when no product has it."""
        tracked = await self._skus.tracks_stock(sku)
        if tracked is None:
            raise SkuNotFound(f"no product has the SKU {sku!r}")
        return tracked

    async def level(self, sku: str) -> StockLevel:
        return await self.stock.level(sku)

    async def levels(self, skus: Sequence[str]) -> dict[str, StockLevel]:
        """The levels of many SKUs at once, for display (see `Stock.levels`)."""
        return await self.stock.levels(skus)

    async def movements(
        self, sku: str, limit: int, before: int | None = None
    ) -> tuple[list[Event], int | None]:
        """A page of the ledger, newest first, and the cursor of the next (older) page."""
        return await self.stock.movements(sku, limit, before)

    async def reservation(self, order_id: str) -> Reservation:
        return await self.reservations.get(order_id)

    # --- staff movements

    async def receive(
        self, sku: str, quantity: int, actor: str, reason: str, request_key: str | None = None
    ) -> Event:
        """Goods in. `request_key` (from the Idempotency-Key) makes a retried receipt count once."""
        await self._require_tracked(sku)
        event_id = f"receipt:{sku}:{request_key}" if request_key else None
        decided = await self.stock.move(
            sku,
            lambda state: ledger.receive(state, sku, quantity, actor, reason, event_id),
            event_id,
        )
        assert decided.event is not None  # a receipt always appends
        return decided.event

    async def adjust(
        self, sku: str, delta: int, actor: str, reason: str, request_key: str | None = None
    ) -> Event:
        """A correction of the count; refused when on hand would fall below what is reserved."""
        await self._require_tracked(sku)
        event_id = f"adjustment:{sku}:{request_key}" if request_key else None
        decided = await self.stock.move(
            sku, lambda state: ledger.adjust(state, sku, delta, actor, reason, event_id), event_id
        )
        assert decided.event is not None  # an adjustment appends or raises
        return decided.event

    # --- reservations

    async def reserve(
        self,
        order_id: str,
        lines: Sequence[tuple[str, int]],
        actor: str,
        ttl_seconds: int | None = None,
    ) -> tuple[Reservation, bool]:
        """Hold every line of an order, or none. The reservation, and whether this call made it
        (False: it was made before and this is a replay)."""
        tracking = await self._tracking(lines)
        return await self.reservations.reserve(order_id, lines, tracking, actor, ttl_seconds)

    async def commit(self, order_id: str, actor: str, reason: str | None = None) -> Reservation:
        """The order is paid: its held stock leaves on_hand. Repeating it changes nothing."""
        return await self.reservations.commit(order_id, actor, reason)

    async def release(self, order_id: str, actor: str, reason: str | None = None) -> Reservation:
        """The order will not be paid: its stock is available again. Repeating it changes nothing."""
        return await self.reservations.release(order_id, actor, reason)

    async def restock(self, order_id: str, actor: str, reason: str) -> list[Event]:
        """A paid order cancelled before it shipped: its committed units are back on the shelf,
        each line once (the receipt's id derives from the order)."""
        reservation = await self.reservations.get(order_id)
        if reservation.state is not ReservationState.COMMITTED:
            return []
        restocked = []
        for line in reservation.tracked_lines:
            try:
                restocked.append(
                    await self.receive(
                        line.sku, line.quantity, actor, reason, f"restock-{order_id}"
                    )
                )
            except (SkuNotFound, StockNotTracked):
                # The SKU no longer counts stock: nothing to put back for it.
                log.warning(
                    "order %s: %s no longer tracks stock; not restocked", order_id, line.sku
                )
        return restocked

    # --- upkeep

    async def sweep(self, now: datetime | None = None) -> int:
        """Expire held reservations past their time, abandon those whose maker died, and finish the
        line events a crash left undone; how many entries were due."""
        return await self._sweeper.sweep(now)

    async def save_snapshots(self, *, every: int = SNAPSHOT_EVERY) -> int:
        return await self.stock.save_snapshots(every=every)

    # --- which SKUs track stock (the catalog says, through the SKU directory)

    async def _require_tracked(self, sku: str) -> None:
        if not await self.tracked(sku):
            raise StockNotTracked(f"{sku} does not track stock: it is always available")

    async def _tracking(self, lines: Sequence[tuple[str, int]]) -> dict[str, bool]:
        skus = list(dict.fromkeys(sku for sku, _ in lines))
        found = dict(
            zip(skus, await asyncio.gather(*map(self._skus.tracks_stock, skus)), strict=True)
        )
        unknown = {
            index: {"sku": ["no product has this SKU"]}
            for index, (sku, _) in enumerate(lines)
            if found[sku] is None
        }
        if unknown:
            raise UnknownSkus("some lines name SKUs no product has", errors={"lines": unknown})
        return {sku: bool(tracked) for sku, tracked in found.items()}
