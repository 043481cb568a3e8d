"""Inventory: receive, adjust, reserve, release and commit stock on the ledger, the expiry sweeper, the wiring.

How it stays right without transactions (architecture.md, "Consistency without transactions"):
- A SKU's stock is its stream `stock-<sku>`. A decision appends one event at `seq + 1`; the insert is the
  commit, so two writers can never both spend the last unit, on FerretDB or MongoDB.
- One instance never races itself: a per-SKU `asyncio.Lock` serialises its decisions over a cached
  (ledger, seq), so the hot path is one insert. The cache may miss another instance's appends: a decision
  that appends proves the cache was current (its slot was free); a refusal or a no-op is only trusted
  after catching up with the stream.
- An order's reservation is a stream too, `reservation-<order_id>`: `requested` claims it, then its lines
  are reserved in SKU order, then `held` or `refused` concludes it. Commit, release and expiry race for
  the same next slot, so exactly one of them decides the fate of the whole order, never line by line;
  every line then follows that decision with an idempotent event (`release:<order>:<attempt>:<sku>`).
- `open_reservations` lists each attempt from before its claim until it can hold nothing more, so no
  crash leaves a claim unlisted; the sweeper (on every instance) expires them when due, abandons those
  whose maker died and finishes what a crash left half done.

What keeps it fast on FerretDB, where each stream event is its own `_id` lookup (FerretDB on PostgreSQL
pushes down top-level equality only, no range or `$in`) and each write a round trip: decisions append
before they read; concurrent readers of one SKU share one read; in-process promises stop a burst of
orders for one SKU from writing anything for the refusals the level already implies; snapshots in
`stock` spare a cold instance from folding a SKU's whole history.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from pymongo.errors import PyMongoError

from products import ledger as rules
from products.inventory_store import InventoryStore, OpenReservation
from products.keys import CATALOG, SETTINGS
from products.ledger import (
    InsufficientStock,
    Ledger,
    Line,
    Reservation,
    ReservationClosed,
    ReservationInProgress,
    ReservationMismatch,
    ReservationNotFound,
    ReservationState,
    Shortage,
    SkuNotFound,
    StockLevel,
    StockNotTracked,
    UnknownSkus,
)
from shopkit import clock
from shopkit.events import ConcurrencyConflict, Event, EventStore, NewEvent
from shopkit.inbox import consume
from shopkit.keys import DB, METRICS
from shopkit.problems import Problem, ServiceUnavailable
from shopkit.tasks import background

log = logging.getLogger("products.inventory")

SkuInfo = Callable[[str], Awaitable[bool | None]]
"""Whether a SKU tracks stock: True or False, None when no product has it."""

RESERVATIONS_COLLECTION = "reservation_events"  # private: the order-level claims are not published
ATTEMPTS = 30
# A reservation's maker stops starting line operations after RUN_DEADLINE, and each operation times
# out within seconds, so a `requested` reservation older than STALE_AFTER has no live maker.
RUN_DEADLINE = 20.0
STALE_AFTER = timedelta(seconds=60)
SWEEP_INTERVAL = 1.0
SWEEP_BATCH = 100
SNAPSHOT_EVERY = 25
# How old a cached level `levels` may serve: the catalog shows availability, it decides nothing.
LEVELS_MAX_AGE = 1.0
MAX_CACHED_SKUS = 50_000
PROMISE_PATIENCE = 2.0
SWEEPER = "system:inventory-sweeper"
ORDER_EVENTS = ("order.paid", "order.cancelled", "order.expired")


def ledger_stream(sku: str) -> str:
    return f"stock-{sku}"


def alert_stream(sku: str) -> str:
    return f"stock-alerts-{sku}"


def reservation_stream(order_id: str) -> str:
    return f"reservation-{order_id}"


@dataclass(slots=True)
class _Slot:
    """One SKU's cached ledger; only a holder of `lock` appends for it in this process."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ledger: Ledger = field(default_factory=Ledger)
    seq: int = 0
    loaded: bool = False
    # An append whose outcome is unknown (a timeout): catch up before deciding again.
    unsure: bool = False
    saved_seq: int = 0
    # When the cache was last known to be the stream's head (monotonic clock).
    confirmed_at: float = 0.0
    # The read of newer events in flight, shared by concurrent callers, and how many started.
    reading: asyncio.Future[tuple[Ledger, int]] | None = None
    reading_number: int = 0
    reads_started: int = 0
    # Units promised to holds in flight in this process, and the event set when that changes.
    promised: int = 0
    settled: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class _Admission:
    """The units one reservation was promised in this process, per SKU, until its holds are done;
    or the lines that are short."""

    promised: dict[str, tuple[_Slot, int]] = field(default_factory=dict)
    shortages: list[Shortage] = field(default_factory=list)

    def release(self, sku: str) -> None:
        found = self.promised.pop(sku, None)
        if found is not None:
            slot, quantity = found
            slot.promised -= quantity
            waking, slot.settled = slot.settled, asyncio.Event()
            waking.set()

    def release_all(self) -> None:
        for sku in list(self.promised):
            self.release(sku)


@dataclass(frozen=True, slots=True)
class Decided:
    before: Ledger
    after: Ledger
    seq: int
    event: Event | None


@dataclass(frozen=True, slots=True)
class InventoryMetrics:
    service: str
    reservations: Counter
    oversell_refused: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, service: str) -> InventoryMetrics:
        return cls(
            service=service,
            reservations=Counter(
                "stock_reservations",
                "Order reservations by outcome",
                ["service", "outcome"],
                registry=registry,
            ),
            oversell_refused=Counter(
                "oversell_attempts_refused",
                "Reservations refused because a line had too little stock",
                ["service"],
                registry=registry,
            ),
        )

    def count(self, outcome: ReservationState) -> None:
        self.reservations.labels(self.service, outcome.value).inc()
        if outcome is ReservationState.REFUSED:
            self.oversell_refused.labels(self.service).inc()


class Inventory:
    def __init__(
        self,
        events: EventStore,
        reservations: EventStore,
        store: InventoryStore,
        sku_info: SkuInfo,
        *,
        reservation_ttl: int,
        low_stock_threshold: int,
        metrics: InventoryMetrics | None = None,
    ) -> None:
        self._events = events
        self._reservations = reservations
        self._store = store
        self._sku_info = sku_info
        self._ttl = reservation_ttl
        self._threshold = low_stock_threshold
        self._metrics = metrics
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._alert_heads: dict[str, int] = {}

    # --- reads

    async def tracked(self, sku: str) -> bool:
        """Whether the SKU tracks stock; SkuNotFound when no product has it."""
        tracked = await self._sku_info(sku)
        if tracked is None:
            raise SkuNotFound(f"no product has the SKU {sku!r}")
        return tracked

    async def level(self, sku: str) -> StockLevel:
        ledger, _ = await self._current(sku)
        return ledger.level(sku)

    async def levels(
        self, skus: Sequence[str], *, max_age: float = LEVELS_MAX_AGE
    ) -> dict[str, StockLevel]:
        """The ledger's levels of many SKUs at once (the caller knows which of them track stock).

        For display: a level this instance confirmed within `max_age` seconds is served from
        memory (its own movements always are); older ones are read again. Every decision on
        stock reads for itself, so a stale level can mislead a shopper for a second, never
        oversell."""
        unique = list(dict.fromkeys(skus))

        async def level(sku: str) -> StockLevel:
            slot = self._slots.get(sku)
            if (
                slot is not None
                and slot.loaded
                and not slot.unsure
                and time.monotonic() - slot.confirmed_at <= max_age
            ):
                return slot.ledger.level(sku)
            return await self.level(sku)

        found = await asyncio.gather(*map(level, unique))
        return dict(zip(unique, found, strict=True))

    async def movements(
        self, sku: str, limit: int, before: int | None = None
    ) -> tuple[list[Event], int | None]:
        """A page of the ledger, newest first, and the cursor of the next (older) page."""
        _, head = await self._current(sku)
        newest = head if before is None else min(before - 1, head)
        if newest < 1:
            return [], None
        after = max(0, newest - limit)
        page = [
            event
            for event in await self._events.load(ledger_stream(sku), after_seq=after)
            if event.seq <= newest
        ]
        page.reverse()
        return page, (page[-1].seq if after > 0 and page else None)

    async def reservation(self, order_id: str) -> Reservation:
        found, _ = await self._reservation(order_id)
        if found is None:
            raise ReservationNotFound(f"order {order_id} has no reservation")
        return found

    # --- staff movements

    async def receive(
        self, sku: str, quantity: int, actor: str, reason: str, request_key: str | None = None
    ) -> Event:
        """Goods in. `request_key` (from the Idempotency-Key) makes a retried receipt count once."""
        await self._require_tracked(sku)
        event_id = f"receipt:{sku}:{request_key}" if request_key else None
        decided = await self._decide(
            sku, lambda ledger: rules.receive(ledger, sku, quantity, actor, reason, event_id)
        )
        await self._after(sku, decided)
        assert decided.event is not None  # a receipt always appends
        return decided.event

    async def adjust(
        self, sku: str, delta: int, actor: str, reason: str, request_key: str | None = None
    ) -> Event:
        """A correction of the count; refused when on hand would fall below what is reserved."""
        await self._require_tracked(sku)
        event_id = f"adjustment:{sku}:{request_key}" if request_key else None
        decided = await self._decide(
            sku, lambda ledger: rules.adjust(ledger, sku, delta, actor, reason, event_id)
        )
        await self._after(sku, decided)
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
        wanted = rules.merge_lines(lines)
        tracking = await self._tracking(lines)
        planned = tuple(Line(sku, quantity, tracking[sku]) for sku, quantity in wanted)
        ttl = timedelta(seconds=ttl_seconds or self._ttl)
        stream = reservation_stream(order_id)
        # A new order's stream is empty: claim it without reading first; a conflict reads.
        events: list[Event] = []
        for _ in range(ATTEMPTS):
            current, seq = _fold_reservation(events)
            if current is not None and current.state not in rules.RETRYABLE:
                if not current.asks_for(wanted):
                    raise ReservationMismatch(
                        f"order {order_id} already reserved other lines; use a new order id"
                    )
                if current.state is not ReservationState.REQUESTED:
                    return current, False
                if not self._stale(current):
                    raise ReservationInProgress(
                        "this order's reservation is being made; retry",
                        self._retry_after(current),
                    )
                await self._change(order_id, self._abandon_if_stale(current.attempt))
                events = await self._reservations.load(stream)
                continue
            if current is not None:
                # An earlier attempt holds nothing once concluded; make sure before a new one.
                await self._settle(current)
            now = clock.now()
            attempt = current.attempt + 1 if current is not None else 1
            claim = rules.request(order_id, attempt, planned, now, now + ttl, actor)
            # Listed before the claim, so no crash leaves a claim the sweeper cannot find: it
            # abandons the attempt once its maker would be stale (or expires it, if that comes
            # first), and drops the entry of a claim that never landed. An attempt shares one
            # entry with a concurrent twin, whichever of them claims.
            await self._store.track(order_id, attempt, planned, min(now + STALE_AFTER, now + ttl))
            try:
                event = await self._reservations.append(stream, seq, claim.type, claim.data)
            except ConcurrencyConflict:
                events += await self._reservations.load(stream, after_seq=seq)
                continue
            events.append(event)
            return await self._make(events, actor), True
        raise ConcurrencyConflict(f"the reservation of order {order_id} kept changing; retry")

    async def commit(self, order_id: str, actor: str, reason: str | None = None) -> Reservation:
        """The order is paid: its held stock leaves on_hand. Repeating it changes nothing."""

        def decide(current: Reservation | None) -> NewEvent | None:
            if current is None:
                raise ReservationNotFound(f"order {order_id} has no reservation")
            if current.state is ReservationState.COMMITTED:
                return None
            if current.state is ReservationState.REQUESTED:
                raise ReservationInProgress(
                    "this order's reservation is still being made", self._retry_after(current)
                )
            return rules.conclude(current, ReservationState.COMMITTED, actor, reason or "paid")

        committed, _ = await self._change(order_id, decide)
        assert committed is not None  # decide raised otherwise
        await self._settle(committed)
        await self._store.untrack(order_id, committed.attempt)
        return committed

    async def release(self, order_id: str, actor: str, reason: str | None = None) -> Reservation:
        """The order will not be paid: its stock is available again. Repeating it changes nothing."""

        def decide(current: Reservation | None) -> NewEvent | None:
            if current is None:
                raise ReservationNotFound(f"order {order_id} has no reservation")
            if current.state is ReservationState.COMMITTED:
                raise ReservationClosed("the reservation was committed: its stock is sold")
            if current.state in (ReservationState.REQUESTED, ReservationState.HELD):
                return rules.conclude(
                    current, ReservationState.RELEASED, actor, reason or "released"
                )
            return None

        released, _ = await self._change(order_id, decide)
        assert released is not None  # decide raised otherwise
        await self._settle(released)
        if self._maker_done(released):
            await self._store.untrack(order_id, released.attempt)
        return released

    async def sweep(self, now: datetime | None = None) -> int:
        """Expire held reservations past their time, abandon those whose maker died, and finish the
        line events a crash left undone; how many entries were due. Safe on every instance at once."""
        now = now or clock.now()
        due = await self._store.due(now, SWEEP_BATCH)
        for entry in due:
            try:
                await self._sweep_one(entry, now)
            except Exception:
                # Part of a supervised loop: one broken entry must not stall every later one.
                log.exception("could not sweep the reservation of order %s", entry.order_id)
        return len(due)

    async def save_snapshots(self, *, every: int = SNAPSHOT_EVERY) -> int:
        """Write the snapshot of each cached SKU that moved `every` events past its last one.

        Movements save their SKU's snapshot themselves (see `_after`); this pass catches the SKUs
        that moved only through reads of other instances' events, and saves all on the way out."""
        dirty = [
            (sku, slot)
            for sku, slot in self._slots.items()
            if slot.loaded and slot.seq - slot.saved_seq >= every
        ]
        for sku, slot in dirty:
            await self._save_snapshot(sku, slot)
        return len(dirty)

    # --- the reservation's maker

    async def _make(self, events: list[Event], actor: str) -> Reservation:
        """Reserve the lines of a just-claimed attempt, then conclude it held or refused."""
        made, _ = _fold_reservation(events)
        assert made is not None
        order_id, attempt = made.order_id, made.attempt
        async with self._admit(made.tracked_lines) as admission:
            shortages = admission.shortages
            if not shortages:
                shortages = await self._hold_all(made, actor, admission)
        outcome = ReservationState.REFUSED if shortages else ReservationState.HELD

        def decide(current: Reservation | None) -> NewEvent | None:
            if current is None or current.attempt != attempt:
                return None
            if current.state is not ReservationState.REQUESTED:
                return None  # released or expired while we were making it
            return rules.conclude(current, outcome, actor, None, shortages)

        concluded, appended = await self._change(order_id, decide, events)
        if not appended or concluded is None:
            # Someone decided first: our lines follow their decision.
            if concluded is None or concluded.attempt != attempt:
                await self._release_lines(order_id, attempt, made.lines, SWEEPER, "abandoned")
            else:
                await self._settle(concluded)
            await self._store.untrack(order_id, attempt)
            state = concluded.state if concluded is not None else "gone"
            raise ReservationClosed(f"the reservation was {state} while it was being made")
        self._count(outcome)
        if outcome is ReservationState.HELD:
            # Its index entry stays due at the maker's staleness; the sweeper then moves it to
            # the expiry, off this request's path: one write fewer for every order.
            return concluded
        await self._store.untrack(order_id, attempt)
        raise InsufficientStock(shortages)

    async def _shortages(self, lines: Sequence[Line]) -> list[Shortage]:
        """The lines the ledger is short of, as the streams have them now (for the answer)."""

        async def short(line: Line) -> Shortage | None:
            ledger, _ = await self._current(line.sku)
            if ledger.available >= line.quantity:
                return None
            return Shortage(line.sku, line.quantity, max(ledger.available, 0))

        found = await asyncio.gather(*map(short, lines))
        return [shortage for shortage in found if shortage is not None]

    async def _hold_all(
        self, made: Reservation, actor: str, admission: _Admission
    ) -> list[Shortage]:
        """Hold each line in SKU order; at the first short one, give back what was held and
        measure the rest, so the answer names every short SKU."""
        deadline = time.monotonic() + RUN_DEADLINE
        held: list[Line] = []
        shortages: list[Shortage] = []
        for line in made.tracked_lines:
            if shortages:
                shortages += await self._shortages([line])
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
            await self._release_lines(
                made.order_id, made.attempt, held, actor, "another line was short"
            )
        return shortages

    @contextlib.asynccontextmanager
    async def _admit(self, lines: Sequence[Line]) -> AsyncIterator[_Admission]:
        """Promise each tracked line its units in this process, or find the lines that are short.

        A burst of orders for one SKU would otherwise all see the same level, and all write an
        index entry and try the ledger, where most then fail. Promises let only as many through
        as the level covers; the others wait for the holds in flight, and once none is left, a
        level read from the stream that does not cover them refuses them with no more writes.
        Promises are taken in SKU order, so two orders never wait on each other; the ledger
        still decides for real."""
        admission = _Admission()
        try:
            for line in lines:
                if not line.tracked:
                    continue
                if admission.shortages:
                    admission.shortages += await self._shortages([line])
                    continue
                shortage = await self._promise(line, admission)
                if shortage is not None:
                    admission.shortages.append(shortage)
                    admission.release_all()  # a refused order keeps nobody waiting
            yield admission
        finally:
            admission.release_all()

    async def _promise(self, line: Line, admission: _Admission) -> Shortage | None:
        confirmed = False  # the level was read from the stream since the last wait
        # A steady flow of small orders could keep a SKU promised forever: past this, an order
        # stops waiting and lets the ledger decide, as it would without promises.
        patience = time.monotonic() + PROMISE_PATIENCE
        while True:
            slot = self._slot(line.sku)
            trusted = slot.loaded and (confirmed or not slot.unsure)
            enough = slot.ledger.available - slot.promised >= line.quantity
            if trusted and (enough or time.monotonic() > patience):
                slot.promised += line.quantity
                admission.promised[line.sku] = (slot, line.quantity)
                return None
            if slot.promised:
                # A hold in flight here may change the answer.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, patience - time.monotonic())):
                        await slot.settled.wait()
                confirmed = False
                continue
            if confirmed:
                return Shortage(line.sku, line.quantity, max(slot.ledger.available, 0))
            await self._current(line.sku)
            confirmed = True

    async def _hold(self, reservation: Reservation, line: Line, actor: str) -> None:
        order_id, attempt = reservation.order_id, reservation.attempt
        decided = await self._decide(
            line.sku,
            lambda ledger: rules.reserve(
                ledger,
                line.sku,
                order_id,
                attempt,
                line.quantity,
                actor,
                reservation.expires_at,
            ),
        )
        await self._after(line.sku, decided)
        if decided.after.holding(order_id, attempt) is None:
            # Its event id was spent and released since: only a maker past its deadline gets here.
            raise ReservationClosed("this reservation attempt was already given up")

    # --- settling lines

    async def _settle(self, reservation: Reservation) -> None:
        """Make every line of the attempt agree with its state (each step is idempotent)."""
        state = reservation.state
        if state is ReservationState.COMMITTED:
            await asyncio.gather(
                *(self._commit_line(reservation, line) for line in reservation.tracked_lines)
            )
        elif state not in (ReservationState.REQUESTED, ReservationState.HELD):
            await self._release_lines(
                reservation.order_id,
                reservation.attempt,
                reservation.lines,
                reservation.actor or SWEEPER,
                reservation.reason or state.value,
            )

    async def _release_lines(
        self, order_id: str, attempt: int, lines: Sequence[Line], actor: str, reason: str
    ) -> None:
        async def release(sku: str) -> None:
            decided = await self._decide(
                sku, lambda ledger: rules.release(ledger, sku, order_id, attempt, actor, reason)
            )
            await self._after(sku, decided)

        await asyncio.gather(*(release(line.sku) for line in lines if line.tracked))

    async def _commit_line(self, reservation: Reservation, line: Line) -> None:
        order_id, attempt = reservation.order_id, reservation.attempt
        actor = reservation.actor or SWEEPER
        reason = reservation.reason or "paid"
        decided = await self._decide(
            line.sku,
            lambda ledger: rules.commit(ledger, line.sku, order_id, attempt, actor, reason),
        )
        await self._after(line.sku, decided)

    # --- the sweeper

    async def _sweep_one(self, entry: OpenReservation, now: datetime) -> None:
        def decide(current: Reservation | None) -> NewEvent | None:
            if current is None or current.attempt != entry.attempt:
                return None
            if current.state is ReservationState.HELD and current.expires_at <= now:
                return rules.conclude(
                    current, ReservationState.EXPIRED, SWEEPER, "not paid in time"
                )
            return self._abandon_if_stale(entry.attempt, now)(current)

        current, appended = await self._change(entry.order_id, decide)
        if current is None or current.attempt != entry.attempt:
            # An earlier attempt, which holds nothing once concluded: make sure, then forget it.
            await self._release_lines(
                entry.order_id, entry.attempt, entry.lines, SWEEPER, "abandoned"
            )
            await self._store.untrack(entry.order_id, entry.attempt)
            return
        if appended:
            self._count(current.state)
        if current.state is ReservationState.REQUESTED:
            await self._store.reschedule(
                entry.order_id, entry.attempt, current.requested_at + STALE_AFTER
            )
        elif current.state is ReservationState.HELD:
            await self._store.reschedule(entry.order_id, entry.attempt, current.expires_at)
        else:
            await self._settle(current)
            if self._maker_done(current, now):
                await self._store.untrack(entry.order_id, entry.attempt)
            else:
                await self._store.reschedule(
                    entry.order_id, entry.attempt, current.requested_at + STALE_AFTER
                )

    def _abandon_if_stale(
        self, attempt: int, now: datetime | None = None
    ) -> Callable[[Reservation | None], NewEvent | None]:
        def decide(current: Reservation | None) -> NewEvent | None:
            if (
                current is None
                or current.attempt != attempt
                or current.state is not ReservationState.REQUESTED
                or not self._stale(current, now)
            ):
                return None
            return rules.conclude(
                current, ReservationState.ABANDONED, SWEEPER, "its maker stopped before finishing"
            )

        return decide

    def _count(self, outcome: ReservationState) -> None:
        if self._metrics is not None:
            self._metrics.count(outcome)

    def _stale(self, reservation: Reservation, now: datetime | None = None) -> bool:
        return (now or clock.now()) - reservation.requested_at > STALE_AFTER

    def _retry_after(self, reservation: Reservation) -> int:
        """Seconds to wait before asking again about an attempt still being made: as long as it
        has been made already (a maker takes well under a second, so an old claim's maker has
        likely died, and a fixed short wait would make its order's retries a storm), but never
        past the moment it counts as abandoned, when a retry makes it anew."""
        age = (clock.now() - reservation.requested_at).total_seconds()
        until_stale = STALE_AFTER.total_seconds() - age + 1
        return max(1, int(min(age, until_stale)))

    def _maker_done(self, reservation: Reservation, now: datetime | None = None) -> bool:
        """Whether the attempt's maker can no longer hold a line (so its index entry may go)."""
        return (
            reservation.held_at is not None
            or reservation.state is ReservationState.REFUSED
            or self._stale(reservation, now)
        )

    # --- the reservation streams

    async def _reservation(self, order_id: str) -> tuple[Reservation | None, int]:
        return _fold_reservation(await self._reservations.load(reservation_stream(order_id)))

    async def _change(
        self,
        order_id: str,
        decide: Callable[[Reservation | None], NewEvent | None],
        known: list[Event] | None = None,
    ) -> tuple[Reservation | None, bool]:
        """Fold the order's reservation, let `decide` refuse, pass or name the next event, append
        it at the next seq; a lost race reads the newer events and decides again. The reservation
        after it, and whether this call appended."""
        stream = reservation_stream(order_id)
        events = list(known) if known is not None else await self._reservations.load(stream)
        for _ in range(ATTEMPTS):
            current, seq = _fold_reservation(events)
            wanted = decide(current)
            if wanted is None:
                return current, False
            try:
                event = await self._reservations.append(stream, seq, wanted.type, wanted.data)
            except ConcurrencyConflict:
                events += await self._reservations.load(stream, after_seq=seq)
                continue
            return rules.fold_reservation(current, event), True
        raise ConcurrencyConflict(f"the reservation of order {order_id} kept changing; retry")

    # --- the ledger streams

    async def _require_tracked(self, sku: str) -> None:
        if not await self.tracked(sku):
            raise StockNotTracked(f"{sku} does not track stock: it is always available")

    async def _tracking(self, lines: Sequence[tuple[str, int]]) -> dict[str, bool]:
        skus = list(dict.fromkeys(sku for sku, _ in lines))
        found = dict(zip(skus, await asyncio.gather(*map(self._sku_info, skus)), strict=True))
        unknown = {
            index: {"sku": ["no product has this SKU"]}
            for index, (sku, _) in enumerate(lines)
            if found[sku] is None
        }
        if unknown:
            raise UnknownSkus("some lines name SKUs no product has", errors={"lines": unknown})
        return {sku: bool(tracked) for sku, tracked in found.items()}

    def _slot(self, sku: str) -> _Slot:
        slot = self._slots.get(sku)
        if slot is not None:
            self._slots.move_to_end(sku)
            return slot
        slot = self._slots[sku] = _Slot()
        while len(self._slots) > MAX_CACHED_SKUS:
            oldest_sku, oldest = next(iter(self._slots.items()))
            if oldest.lock.locked() or oldest.promised or oldest.seq > oldest.saved_seq:
                break  # busy or unsaved: kept until the next snapshot pass
            del self._slots[oldest_sku]
        return slot

    async def _load(self, sku: str, slot: _Slot) -> None:
        """Start from the snapshot and fold the events after it (the caller holds the lock)."""
        started = time.monotonic()
        snapshot = await self._store.snapshot(sku)
        ledger, seq = snapshot if snapshot is not None else (Ledger(), 0)
        newer = await self._events.load(ledger_stream(sku), after_seq=seq)
        slot.ledger, slot.seq = rules.fold_all(ledger, seq, newer)
        slot.saved_seq, slot.loaded, slot.unsure = seq, True, False
        slot.confirmed_at = started

    async def _catch_up(self, sku: str, slot: _Slot) -> None:
        await self._refresh(sku, slot)
        slot.unsure = False

    async def _current(self, sku: str) -> tuple[Ledger, int]:
        """The ledger as the stream has it now (reads fold the newer events, without the lock)."""
        slot = self._slot(sku)
        if not slot.loaded:
            async with slot.lock:
                if not slot.loaded:
                    await self._load(sku, slot)
                return slot.ledger, slot.seq
        return await self._refresh(sku, slot)

    async def _refresh(self, sku: str, slot: _Slot) -> tuple[Ledger, int]:
        """Fold the events after the cached seq, sharing one read among concurrent callers.

        A read only answers callers that asked before it started (one that started earlier may
        have passed a slot that filled since), so a burst of callers costs at most two reads,
        where each reading for itself would probe the same slots once per caller."""
        asked = slot.reads_started
        while True:
            # A finished read whose done-callback has not run yet counts as none.
            if slot.reading is None or slot.reading.done():
                slot.reads_started += 1
                slot.reading_number = slot.reads_started
                slot.reading = asyncio.ensure_future(self._read(sku, slot))
                slot.reading.add_done_callback(functools.partial(_read_done, slot))
            reading, number = slot.reading, slot.reading_number
            # Shielded: a caller that gives up must not cancel the read the others wait for.
            result = await asyncio.shield(reading)
            if number > asked:
                return result

    async def _read(self, sku: str, slot: _Slot) -> tuple[Ledger, int]:
        started = time.monotonic()
        ledger, seq = slot.ledger, slot.seq
        newer = await self._events.load(ledger_stream(sku), after_seq=seq)
        folded, head = rules.fold_all(ledger, seq, newer)
        # Both are exact prefixes of one append-only stream: the longer one is the newer.
        if head >= slot.seq:
            slot.ledger, slot.seq = folded, head
            slot.confirmed_at = max(slot.confirmed_at, started)
        return folded, head

    async def _decide(self, sku: str, decision: Callable[[Ledger], NewEvent | None]) -> Decided:
        """Decide against the cached ledger and append at its next seq.

        An append that lands proves the cache was current. A refusal or a no-op could come from a
        cache that missed another instance's events, so it is decided again after catching up."""
        slot = self._slot(sku)
        stream = ledger_stream(sku)
        async with slot.lock:
            if not slot.loaded:
                await self._load(sku, slot)
            elif slot.unsure:
                await self._catch_up(sku, slot)
            confirmed = False
            for attempt in range(ATTEMPTS):
                before = slot.ledger
                try:
                    wanted = decision(before)
                except Problem:
                    if confirmed:
                        raise
                    wanted = None
                if wanted is None:
                    if confirmed:
                        return Decided(before, before, slot.seq, None)
                    await self._catch_up(sku, slot)
                    confirmed = True
                    continue
                slot.unsure = True
                appending_at = time.monotonic()
                try:
                    event = await self._events.append(
                        stream, slot.seq, wanted.type, wanted.data, wanted.id
                    )
                except ConcurrencyConflict:
                    # Another instance appended first: fold its events and decide again.
                    await self._catch_up(sku, slot)
                    confirmed = True
                    if attempt >= 2:
                        await asyncio.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 6)))
                    continue
                if event.seq == slot.seq + 1:
                    slot.ledger, slot.seq, slot.unsure = rules.fold(before, event), event.seq, False
                    # The free slot proved the cache current; our event is now the head.
                    slot.confirmed_at = appending_at
                    return Decided(before, slot.ledger, slot.seq, event)
                # An earlier try of this decision stored it further back: the stream has it already.
                await self._catch_up(sku, slot)
                return Decided(slot.ledger, slot.ledger, slot.seq, event)
        raise ConcurrencyConflict(f"the stock of {sku} kept changing; retry")

    # --- alerts

    async def _save_snapshot(self, sku: str, slot: _Slot) -> None:
        ledger, seq, saved = slot.ledger, slot.seq, slot.saved_seq
        # Counted as saved from the start, so the movements that follow on a busy SKU do not all
        # write the same snapshot meanwhile.
        slot.saved_seq = max(saved, seq)
        try:
            await self._store.save_snapshot(sku, ledger, seq)
        except BaseException:
            if slot.saved_seq == seq:
                slot.saved_seq = saved
            raise

    async def _after(self, sku: str, decided: Decided) -> None:
        if decided.event is None:
            return
        # Alerts first: a slow or cancelled snapshot write must not delay or skip them.
        for alert in rules.alerts(decided.before, decided.after, self._threshold):
            try:
                await self._alert(sku, alert, decided)
            except PyMongoError:
                # The movement itself is recorded; losing its alert must not fail the request.
                log.warning("could not record the %s alert of %s", alert.value, sku, exc_info=True)
        slot = self._slots.get(sku)
        if slot is not None and slot.loaded and slot.seq - slot.saved_seq >= SNAPSHOT_EVERY:
            # Saved by the movement itself, not only by the periodic pass, so however fast a SKU
            # moves, a cold instance folds at most SNAPSHOT_EVERY events after its snapshot,
            # never a ledger that grows forever (it is the audit trail).
            try:
                await self._save_snapshot(sku, slot)
            except PyMongoError:
                log.warning("could not save the stock snapshot of %s", sku, exc_info=True)

    async def _alert(self, sku: str, alert: rules.Alert, decided: Decided) -> None:
        after = decided.after
        data = {
            "sku": sku,
            "on_hand": after.on_hand,
            "reserved": after.reserved,
            "available": after.available,
            "threshold": self._threshold,
            "ledger_seq": decided.seq,
        }
        stream = alert_stream(sku)
        # Derived from the ledger slot, so a repeated alert for the same movement is stored once.
        event_id = f"{alert.value}:{sku}:{decided.seq}"
        for _ in range(ATTEMPTS):
            head = self._alert_heads.get(sku)
            if head is None:
                head = await self._events.head(stream)
            try:
                stored = await self._events.append(stream, head, alert.value, data, event_id)
            except ConcurrencyConflict:
                self._alert_heads.pop(sku, None)
                continue
            if stored.seq == head + 1:
                self._alert_heads[sku] = stored.seq
            return
        log.warning("gave up recording the %s alert of %s", alert.value, sku)


def _read_done(slot: _Slot, done: asyncio.Future[tuple[Ledger, int]]) -> None:
    if slot.reading is done:
        slot.reading = None
    if not done.cancelled():
        done.exception()  # its waiters got it; retrieved here so nobody logs it as lost


def _fold_reservation(events: Sequence[Event]) -> tuple[Reservation | None, int]:
    reservation: Reservation | None = None
    seq = 0
    for event in events:
        reservation, seq = rules.fold_reservation(reservation, event), event.seq
    return reservation, seq


INVENTORY = web.AppKey("inventory", Inventory)


async def on_order_event(app: web.Application, event: Event) -> None:
    """orders' `order.paid` commits the order's stock; `order.cancelled` and `order.expired`
    release it. Both are idempotent, so a redelivered event changes nothing."""
    order_id = event.data.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        log.warning("event %s (%s) names no order; ignored", event.id, event.type)
        return
    inventory = app[INVENTORY]
    try:
        if event.type == "order.paid":
            await inventory.commit(order_id, "service:orders", event.type)
        else:
            await inventory.release(order_id, "service:orders", event.type)
    except ReservationNotFound:
        log.info("order %s has no reservation; %s changes no stock", order_id, event.type)
    except ReservationClosed as closed:
        level = logging.ERROR if event.type == "order.paid" else logging.WARNING
        log.log(level, "%s for order %s changed no stock: %s", event.type, order_id, closed.detail)


async def _sweep(app: web.Application) -> float | None:
    inventory = app[INVENTORY]
    due = await inventory.sweep()
    await inventory.save_snapshots()
    return 0 if due >= SWEEP_BATCH else None


def inventory_context(
    sku_info: Callable[[web.Application], SkuInfo],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx entry: the Inventory in `app[INVENTORY]`, its sweeper and its order-event
    consumer; `sku_info(app)` says where a SKU's tracking comes from."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        db = app[DB]
        events = EventStore(db)
        reservations = EventStore(db, RESERVATIONS_COLLECTION)
        store = InventoryStore(db)
        await events.ensure_indexes()
        await reservations.ensure_indexes()
        await store.ensure_indexes()
        inventory = Inventory(
            events,
            reservations,
            store,
            sku_info(app),
            reservation_ttl=settings.reservation_ttl,
            low_stock_threshold=settings.low_stock_threshold,
            metrics=InventoryMetrics.create(app[METRICS].registry, settings.service_name),
        )
        app[INVENTORY] = inventory
        jobs = (
            background("inventory-sweeper", _sweep, SWEEP_INTERVAL),
            consume(
                f"{settings.service_name}-inventory",
                stream="orders",
                subjects=[f"shop.orders.{name}" for name in ORDER_EVENTS],
                handler=on_order_event,
            ),
        )
        async with contextlib.AsyncExitStack() as running:
            for job in jobs:
                await running.enter_async_context(contextlib.asynccontextmanager(job)(app))
            yield
        try:
            await inventory.save_snapshots(every=1)
        except PyMongoError:
            log.warning("could not save the stock snapshots on the way out; they are only a cache")

    return context


def catalog_skus(app: web.Application) -> SkuInfo:
    """A SKU's tracking as the catalog has it."""
    store = app[CATALOG].store

    async def tracked(sku: str) -> bool | None:
        product_id = await store.product_id_for_sku(sku)
        product = await store.get(product_id) if product_id else None
        variant = product.variant(sku) if product is not None else None
        return variant.track_stock if variant is not None else None

    return tracked


inventory_ctx = inventory_context(catalog_skus)
