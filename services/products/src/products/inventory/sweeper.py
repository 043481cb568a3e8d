"""The reservation sweeper: expires held reservations past their time, abandons those whose maker died,
and finishes the line events a crash left undone. Safe on every instance at once."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from products.inventory.metrics import InventoryMetrics
from products.inventory.reservation import Reservation, ReservationState, conclude
from products.inventory.reservations import STALE_AFTER, SWEEPER, Reservations
from products.inventory.store import InventoryStore, OpenReservation
from shopkit import clock
from shopkit.events import NewEvent

log = logging.getLogger("products.inventory")

SWEEP_INTERVAL = 1.0
SWEEP_BATCH = 100
# Sweeps run every second: an entry due for longer than this was not swept when due (sweeps fail
# on it, or fall behind), and its stock is held for an order that can no longer use it.
STUCK_AFTER = timedelta(minutes=1)


class Sweeper:
    def __init__(
        self,
        reservations: Reservations,
        store: InventoryStore,
        metrics: InventoryMetrics | None = None,
    ) -> None:
        self._reservations = reservations
        self._store = store
        self._metrics = metrics

    async def sweep(self, now: datetime | None = None) -> int:
        """Look at every open reservation that is due; how many entries were due."""
        now = now or clock.now()
        due = await self._store.due(now, SWEEP_BATCH)
        if self._metrics is not None:
            # Counted from the batch the pass reads anyway: no query of its own per scrape.
            self._metrics.stuck_found(sum(entry.due_at <= now - STUCK_AFTER for entry in due))
        for entry in due:
            try:
                await self._sweep_one(entry, now)
            except Exception:
                # Part of a supervised loop: one broken entry must not stall every later one.
                log.exception("could not sweep the reservation of order %s", entry.order_id)
        return len(due)

    async def _sweep_one(self, entry: OpenReservation, now: datetime) -> None:
        reservations = self._reservations

        def decision(current: Reservation | None) -> NewEvent | None:
            if current is None or current.attempt != entry.attempt:
                return None
            if current.state is ReservationState.HELD and current.expires_at <= now:
                return conclude(current, ReservationState.EXPIRED, SWEEPER, "not paid in time")
            return reservations.abandon_if_stale(entry.attempt, now)(current)

        current, appended = await reservations.change(entry.order_id, decision)
        if current is None or current.attempt != entry.attempt:
            # An earlier attempt, which holds nothing once concluded: make sure, then forget it.
            await reservations.release_lines(
                entry.order_id, entry.attempt, entry.lines, SWEEPER, "abandoned"
            )
            await self._store.untrack(entry.order_id, entry.attempt)
            return
        if appended:
            reservations.count(current.state)
        if current.state is ReservationState.REQUESTED:
            await self._store.reschedule(
                entry.order_id, entry.attempt, current.requested_at + STALE_AFTER
            )
        elif current.state is ReservationState.HELD:
            await self._store.reschedule(entry.order_id, entry.attempt, current.expires_at)
        else:
            await reservations.align_lines(current)
            if reservations.maker_done(current, now):
                await self._store.untrack(entry.order_id, entry.attempt)
            else:
                await self._store.reschedule(
                    entry.order_id, entry.attempt, current.requested_at + STALE_AFTER
                )
