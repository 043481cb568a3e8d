"""Reserve, commit and release an order's stock: its reservation stream, then one event per line.

An order's reservation is the stream `reservation-<order_id>`: `requested` claims it, then its lines are
reserved in SKU order, then `held` or `refused` concludes it. Commit, release and expiry race for the
same next slot, so exactly one of them decides the fate of the whole order, never line by line; every
line then follows that decision with an idempotent event (`release:<order>:<attempt>:<sku>`).
`open_reservations` lists each attempt from before its claim until it can hold nothing more, so no
crash leaves a claim unlisted; the sweeper expires, abandons and finishes them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from products.inventory import ledger
from products.inventory.admission import Admission, admit
from products.inventory.errors import (
    InsufficientStock,
    ReservationClosed,
    ReservationInProgress,
    ReservationMismatch,
    ReservationNotFound,
    Shortage,
)
from products.inventory.metrics import InventoryMetrics
from products.inventory.reservation import (
    REQUESTED_EVENT,
    RETRYABLE,
    Line,
    Reservation,
    ReservationState,
    conclude,
    fold_reservation,
    merge_lines,
    request,
)
from products.inventory.stock import Stock
from products.inventory.store import InventoryStore
from shopkit import clock
from shopkit.events import Event, EventStore, NewEvent, Outcome, StreamBusy, decide
from shopkit.problems import ServiceUnavailable

RESERVATIONS_COLLECTION = "reservation_events"  # private: the order-level claims are not published
# A reservation's maker stops starting line operations after RUN_DEADLINE, and each operation times
# out within seconds, so a `requested` reservation older than STALE_AFTER has no live maker.
RUN_DEADLINE = 20.0
STALE_AFTER = timedelta(seconds=60)
SWEEPER = "system:inventory-sweeper"

ReservationDecision = Callable[[Reservation | None], NewEvent | None]


def reservation_stream(order_id: str) -> str:
    return f"reservation-{order_id}"


class Reservations:
    def __init__(
        self,
        events: EventStore,
        store: InventoryStore,
        stock: Stock,
        *,
        reservation_ttl: int,
        metrics: InventoryMetrics | None = None,
    ) -> None:
        self.events = events
        self._store = store
        self._stock = stock
        self._ttl = reservation_ttl
        self._metrics = metrics

    async def get(self, order_id: str) -> Reservation:
        found, _ = _fold(await self.events.load(reservation_stream(order_id)))
        if found is None:
            raise ReservationNotFound(f"order {order_id} has no reservation")
        return found

    async def reserve(
        self,
        order_id: str,
        lines: Sequence[tuple[str, int]],
        tracking: Mapping[str, bool],
        actor: str,
        ttl_seconds: int | None = None,
    ) -> tuple[Reservation, bool]:
        """Hold every line of an order, or none. The reservation, and whether this call made it
        (False: it was made before and this is a replay). `tracking` says which SKUs count stock."""
        wanted = merge_lines(lines)
        planned = tuple(Line(sku, quantity, tracking[sku]) for sku, quantity in wanted)
        ttl = timedelta(seconds=ttl_seconds or self._ttl)
        stream = reservation_stream(order_id)

        async def claim(current: Reservation | None) -> NewEvent | None:
            if current is not None and current.state not in RETRYABLE:
                if not current.asks_for(wanted):
                    raise ReservationMismatch(
                        f"order {order_id} already reserved other lines; use a new order id"
                    )
                if current.state is not ReservationState.REQUESTED:
                    return None  # made before: this is a replay
                if not self.stale(current):
                    raise ReservationInProgress(
                        "this order's reservation is being made; retry",
                        self._retry_after(current),
                    )
                return self.abandon_if_stale(current.attempt)(current)
            if current is not None:
                # An earlier attempt holds nothing once concluded; make sure before a new one.
                await self.align_lines(current)
            now = clock.now()
            attempt = current.attempt + 1 if current is not None else 1
            # Listed before the claim, so no crash leaves a claim the sweeper cannot find: it
            # abandons the attempt once its maker would be stale (or expires it, if that comes
            # first), and drops the entry of a claim that never landed. An attempt shares one
            # entry with a concurrent twin, whichever of them claims.
            await self._store.track(order_id, attempt, planned, min(now + STALE_AFTER, now + ttl))
            return request(order_id, attempt, planned, now, now + ttl, actor)

        # A new order's stream is empty: claim it without reading first; a conflict reads. A
        # stale attempt in the way is abandoned by the first decision, and the next claims.
        state: Reservation | None = None
        seq = 0
        for _ in range(2):
            claimed = await decide(
                self.events, stream, state, fold_reservation, claim, after_seq=seq
            )
            if claimed.event is None:
                assert claimed.state is not None  # claim() appends on an empty stream
                return claimed.state, False
            if claimed.event.type == REQUESTED_EVENT:
                return await self._make(claimed, actor), True
            state, seq = claimed.state, claimed.seq
        raise StreamBusy(f"the reservation of order {order_id} kept changing; retry")

    async def commit(self, order_id: str, actor: str, reason: str | None = None) -> Reservation:
        """The order is paid: its held stock leaves on_hand. Repeating it changes nothing."""

        def decision(current: Reservation | None) -> NewEvent | None:
            if current is None:
                raise ReservationNotFound(f"order {order_id} has no reservation")
            if current.state is ReservationState.COMMITTED:
                return None
            if current.state is ReservationState.REQUESTED:
                raise ReservationInProgress(
                    "this order's reservation is still being made", self._retry_after(current)
                )
            return conclude(current, ReservationState.COMMITTED, actor, reason or "paid")

        committed, _ = await self.change(order_id, decision)
        assert committed is not None  # the decision raised otherwise
        await self.align_lines(committed)
        await self._store.untrack(order_id, committed.attempt)
        return committed

    async def release(self, order_id: str, actor: str, reason: str | None = None) -> Reservation:
        """The order will not be paid: its stock is available again. Repeating it changes nothing."""

        def decision(current: Reservation | None) -> NewEvent | None:
            if current is None:
                raise ReservationNotFound(f"order {order_id} has no reservation")
            if current.state is ReservationState.COMMITTED:
                raise ReservationClosed("the reservation was committed: its stock is sold")
            if current.state in (ReservationState.REQUESTED, ReservationState.HELD):
                return conclude(current, ReservationState.RELEASED, actor, reason or "released")
            return None

        released, _ = await self.change(order_id, decision)
        assert released is not None  # the decision raised otherwise
        await self.align_lines(released)
        if self.maker_done(released):
            await self._store.untrack(order_id, released.attempt)
        return released

    # --- the reservation's maker

    async def _make(self, claimed: Outcome[Reservation | None], actor: str) -> Reservation:
        """Reserve the lines of a just-claimed attempt, then conclude it held or refused."""
        made = claimed.state
        assert made is not None
        order_id, attempt = made.order_id, made.attempt
        async with admit(self._stock, made.tracked_lines) as admission:
            shortages = admission.shortages
            if not shortages:
                shortages = await self._hold_all(made, actor, admission)
        outcome = ReservationState.REFUSED if shortages else ReservationState.HELD

        def decision(current: Reservation | None) -> NewEvent | None:
            if current is None or current.attempt != attempt:
                return None
            if current.state is not ReservationState.REQUESTED:
                return None  # released or expired while we were making it
            return conclude(current, outcome, actor, None, shortages)

        concluded, appended = await self.change(
            order_id, decision, state=made, after_seq=claimed.seq
        )
        if not appended or concluded is None:
            # Someone decided first: our lines follow their decision.
            if concluded is None or concluded.attempt != attempt:
                await self.release_lines(order_id, attempt, made.lines, SWEEPER, "abandoned")
            else:
                await self.align_lines(concluded)
            await self._store.untrack(order_id, attempt)
            state = concluded.state if concluded is not None else "gone"
            raise ReservationClosed(f"the reservation was {state} while it was being made")
        self.count(outcome)
        if outcome is ReservationState.HELD:
            # Its index entry stays due at the maker's staleness; the sweeper then moves it to
            # the expiry, off this request's path: one write fewer for every order.
            return concluded
        await self._store.untrack(order_id, attempt)
        raise InsufficientStock(shortages)

    async def _hold_all(
        self, made: Reservation, actor: str, admission: Admission
    ) -> list[Shortage]:
        """Hold each line in SKU order; at the first short one, give back what was held and
        measure the rest, so the answer names every short SKU."""
        deadline = time.monotonic() + RUN_DEADLINE
        held: list[Line] = []
        shortages: list[Shortage] = []
        for line in made.tracked_lines:
            if shortages:
                shortages += await self._stock.shortages([line])
                continue
            if time.monotonic() > deadline:
                raise ServiceUnavailable("the reservation took too long; it will be undone")
            try:
                await self._hold(made, line, actor)
            except InsufficientStock as short:
                shortages.extend(short.shortages)
                continue
            finally:
                # The ledger now shows this hold (or its refusal): the promise has done its job.
                admission.release(line.sku)
            held.append(line)
        if shortages:
            await self.release_lines(
                made.order_id, made.attempt, held, actor, "another line was short"
            )
        return shortages

    async def _hold(self, made: Reservation, line: Line, actor: str) -> None:
        order_id, attempt = made.order_id, made.attempt
        decided = await self._stock.move(
            line.sku,
            lambda state: ledger.reserve(
                state, line.sku, order_id, attempt, line.quantity, actor, made.expires_at
            ),
        )
        if decided.state.holding(order_id, attempt) is None:
            # Its event id was spent and released since: only a maker past its deadline gets here.
            raise ReservationClosed("this reservation attempt was already given up")

    # --- the lines follow the reservation

    async def align_lines(self, reservation: Reservation) -> None:
        """Make every line of the attempt agree with its state (each step is idempotent)."""
        state = reservation.state
        if state is ReservationState.COMMITTED:
            await asyncio.gather(
                *(self._commit_line(reservation, line) for line in reservation.tracked_lines)
            )
        elif state not in (ReservationState.REQUESTED, ReservationState.HELD):
            await self.release_lines(
                reservation.order_id,
                reservation.attempt,
                reservation.lines,
                reservation.actor or SWEEPER,
                reservation.reason or state.value,
            )

    async def release_lines(
        self, order_id: str, attempt: int, lines: Sequence[Line], actor: str, reason: str
    ) -> None:
        async def release_line(sku: str) -> None:
            await self._stock.move(
                sku, lambda state: ledger.release(state, sku, order_id, attempt, actor, reason)
            )

        await asyncio.gather(*(release_line(line.sku) for line in lines if line.tracked))

    async def _commit_line(self, reservation: Reservation, line: Line) -> None:
        order_id, attempt = reservation.order_id, reservation.attempt
        actor = reservation.actor or SWEEPER
        reason = reservation.reason or "paid"
        await self._stock.move(
            line.sku,
            lambda state: ledger.commit(state, line.sku, order_id, attempt, actor, reason),
        )

    # --- the reservation stream

    async def change(
        self,
        order_id: str,
        decision: ReservationDecision,
        *,
        state: Reservation | None = None,
        after_seq: int = 0,
    ) -> tuple[Reservation | None, bool]:
        """Let `decision` refuse, pass or name the next event of the order's reservation (`state`
        at `after_seq`, when the caller knows it) and append it; a lost race reads the newer events
        and decides again. The reservation after it, and whether this call appended."""
        changed = await decide(
            self.events,
            reservation_stream(order_id),
            state,
            fold_reservation,
            decision,
            after_seq=after_seq,
        )
        return changed.state, changed.event is not None

    def abandon_if_stale(self, attempt: int, now: datetime | None = None) -> ReservationDecision:
        def decision(current: Reservation | None) -> NewEvent | None:
            if (
                current is None
                or current.attempt != attempt
                or current.state is not ReservationState.REQUESTED
                or not self.stale(current, now)
            ):
                return None
            return conclude(
                current, ReservationState.ABANDONED, SWEEPER, "its maker stopped before finishing"
            )

        return decision

    def count(self, outcome: ReservationState) -> None:
        if self._metrics is not None:
            self._metrics.count(outcome)

    def stale(self, reservation: Reservation, now: datetime | None = None) -> bool:
        return (now or clock.now()) - reservation.requested_at > STALE_AFTER

    def maker_done(self, reservation: Reservation, now: datetime | None = None) -> bool:
        """Whether the attempt's maker can no longer hold a line (so its index entry may go)."""
        return (
            reservation.held_at is not None
            or reservation.state is ReservationState.REFUSED
            or self.stale(reservation, now)
        )

    def _retry_after(self, reservation: Reservation) -> int:
        """Seconds to wait before asking again about an attempt still being made: as long as it
        has been made already (a maker takes well under a second, so an old claim's maker has
        likely died, and a fixed short wait would make its order's retries a storm), but never
        past the moment it counts as abandoned, when a retry makes it anew."""
        age = (clock.now() - reservation.requested_at).total_seconds()
        until_stale = STALE_AFTER.total_seconds() - age + 1
        return max(1, int(min(age, until_stale)))


def _fold(events: Sequence[Event]) -> tuple[Reservation | None, int]:
    reservation: Reservation | None = None
    seq = 0
    for event in events:
        reservation, seq = fold_reservation(reservation, event), event.seq
    return reservation, seq
