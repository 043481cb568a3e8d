"""Each SKU's stock stream, cached per SKU in this process: levels, movements, decisions, snapshots, alerts.

A SKU's stock is its stream `stock-<sku>`. A decision appends one event at `seq + 1`; the insert is the
commit, so two writers can never both spend the last unit, on FerretDB or MongoDB. One instance never
races itself: a per-SKU `asyncio.Lock` serialises its decisions over a cached (ledger, seq), so the hot
path is one insert. The cache may miss another instance's appends: a decision that appends proves the
cache was current (its slot was free); a refusal or a no-op is only trusted after catching up with the
stream. Concurrent readers of one SKU share one read, and snapshots in `stock` spare a cold instance
from folding a SKU's whole history.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pymongo.errors import PyMongoError

from products.events import Alert, StockAlerted
from products.inventory import ledger
from products.inventory.errors import Shortage
from products.inventory.ledger import Ledger, StockLevel
from products.inventory.reservation import Line
from products.inventory.store import InventoryStore
from shopkit.events import Event, EventStore, NewEvent, Outcome, StreamBusy, append_at_end, decide
from shopkit.problems import Problem

log = logging.getLogger("products.inventory")

SNAPSHOT_EVERY = 25
# How old a cached level `levels` may serve: the catalog shows availability, it decides nothing.
LEVELS_MAX_AGE = 1.0
MAX_CACHED_SKUS = 50_000


def ledger_stream(sku: str) -> str:
    return f"stock-{sku}"


def alert_stream(sku: str) -> str:
    return f"stock-alerts-{sku}"


@dataclass(slots=True)
class CachedLedger:
    """One SKU's ledger as this process last read it; only a holder of `lock` appends for it."""

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
    # Units promised to holds in flight in this process (see `admission`), and the event set when
    # that number changes.
    promised: int = 0
    promises_changed: asyncio.Event = field(default_factory=asyncio.Event)


Decided = Outcome[Ledger]
"""A movement decided: the ledger `before` it, the ledger after it (`state`) at `seq`, its event."""


class Stock:
    def __init__(
        self, events: EventStore, store: InventoryStore, *, low_stock_threshold: int
    ) -> None:
        self._events = events
        self._store = store
        self._threshold = low_stock_threshold
        self._cache: OrderedDict[str, CachedLedger] = OrderedDict()
        self._alert_heads: dict[str, int] = {}

    # --- reads

    async def level(self, sku: str) -> StockLevel:
        state, _ = await self.current(sku)
        return state.level(sku)

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
            cached = self._cache.get(sku)
            if (
                cached is not None
                and cached.loaded
                and not cached.unsure
                and time.monotonic() - cached.confirmed_at <= max_age
            ):
                return cached.ledger.level(sku)
            return await self.level(sku)

        found = await asyncio.gather(*map(level, unique))
        return dict(zip(unique, found, strict=True))

    async def movements(
        self, sku: str, limit: int, before: int | None = None
    ) -> tuple[list[Event], int | None]:
        """A page of the ledger, newest first, and the cursor of the next (older) page."""
        _, head = await self.current(sku)
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

    async def shortages(self, lines: Sequence[Line]) -> list[Shortage]:
        """The lines the ledger is short of, as the streams have them now (for the answer)."""

        async def short(line: Line) -> Shortage | None:
            state, _ = await self.current(line.sku)
            if state.available >= line.quantity:
                return None
            return Shortage(line.sku, line.quantity, max(state.available, 0))

        found = await asyncio.gather(*map(short, lines))
        return [shortage for shortage in found if shortage is not None]

    def cached(self, sku: str) -> CachedLedger:
        """The SKU's cache entry, made (empty, not loaded) when there is none."""
        cached = self._cache.get(sku)
        if cached is not None:
            self._cache.move_to_end(sku)
            return cached
        cached = self._cache[sku] = CachedLedger()
        while len(self._cache) > MAX_CACHED_SKUS:
            oldest_sku, oldest = next(iter(self._cache.items()))
            if oldest.lock.locked() or oldest.promised or oldest.seq > oldest.saved_seq:
                break  # busy or unsaved: kept until the next snapshot pass
            del self._cache[oldest_sku]
        return cached

    async def current(self, sku: str) -> tuple[Ledger, int]:
        """The ledger as the stream has it now (reads fold the newer events, without the lock)."""
        cached = self.cached(sku)
        if not cached.loaded:
            async with cached.lock:
                if not cached.loaded:
                    await self._load(sku, cached)
                return cached.ledger, cached.seq
        return await self._refresh(sku, cached)

    async def _load(self, sku: str, cached: CachedLedger) -> None:
        """Start from the snapshot and fold the events after it (the caller holds the lock)."""
        started = time.monotonic()
        snapshot = await self._store.snapshot(sku)
        state, seq = snapshot if snapshot is not None else (Ledger(), 0)
        newer = await self._events.load(ledger_stream(sku), after_seq=seq)
        cached.ledger, cached.seq = ledger.fold_all(state, seq, newer)
        cached.saved_seq, cached.loaded, cached.unsure = seq, True, False
        cached.confirmed_at = started

    async def _catch_up(self, sku: str, cached: CachedLedger) -> None:
        await self._refresh(sku, cached)
        cached.unsure = False

    async def _refresh(self, sku: str, cached: CachedLedger) -> tuple[Ledger, int]:
        """Fold the events after the cached seq, sharing one read among concurrent callers.

        A read only answers callers that asked before it started (one that started earlier may
        have passed a slot that filled since), so a burst of callers costs at most two reads,
        where each reading for itself would probe the same slots once per caller."""
        asked = cached.reads_started
        while True:
            # A finished read whose done-callback has not run yet counts as none.
            if cached.reading is None or cached.reading.done():
                cached.reads_started += 1
                cached.reading_number = cached.reads_started
                cached.reading = asyncio.ensure_future(self._read(sku, cached))
                cached.reading.add_done_callback(functools.partial(_read_done, cached))
            reading, number = cached.reading, cached.reading_number
            # Shielded: a caller that gives up must not cancel the read the others wait for.
            result = await asyncio.shield(reading)
            if number > asked:
                return result

    async def _read(self, sku: str, cached: CachedLedger) -> tuple[Ledger, int]:
        started = time.monotonic()
        state, seq = cached.ledger, cached.seq
        newer = await self._events.load(ledger_stream(sku), after_seq=seq)
        folded, head = ledger.fold_all(state, seq, newer)
        # Both are exact prefixes of one append-only stream: the longer one is the newer.
        if head >= cached.seq:
            cached.ledger, cached.seq = folded, head
            cached.confirmed_at = max(cached.confirmed_at, started)
        return folded, head

    # --- movements

    async def move(self, sku: str, decision: Callable[[Ledger], NewEvent | None]) -> Decided:
        """Decide and append one movement, then record the alerts and snapshot it calls for."""
        decided = await self._decide(sku, decision)
        await self._after(sku, decided)
        return decided

    async def _decide(self, sku: str, decision: Callable[[Ledger], NewEvent | None]) -> Decided:
        """Decide against the cached ledger and append at its next seq (the kit's `decide`).

        An append that lands proves the cache was current. A refusal or a no-op could come from a
        cache that missed another instance's events, so it is decided again after catching up,
        through the read the cache shares with its concurrent readers."""
        cached = self.cached(sku)

        async def catch_up(state: Ledger, seq: int) -> tuple[Ledger, int]:
            return await self._refresh(sku, cached)

        async with cached.lock:
            if not cached.loaded:
                await self._load(sku, cached)
            elif cached.unsure:
                await self._catch_up(sku, cached)
            started = time.monotonic()
            # Until the outcome is known: an append that timed out may have landed.
            cached.unsure = True
            try:
                decided = await decide(
                    self._events,
                    ledger_stream(sku),
                    cached.ledger,
                    ledger.fold,
                    decision,
                    after_seq=cached.seq,
                    catch_up=catch_up,
                )
            except Problem:
                # A refusal (or StreamBusy) comes only after a catch-up: the cache is current.
                cached.unsure = False
                raise
            if decided.seq >= cached.seq:
                cached.ledger, cached.seq = decided.state, decided.seq
                # The free slot (or the read that confirmed a no-op) proved the cache current.
                cached.confirmed_at = max(cached.confirmed_at, started)
            cached.unsure = False
            return decided

    # --- snapshots and alerts

    async def save_snapshots(self, *, every: int = SNAPSHOT_EVERY) -> int:
        """Write the snapshot of each cached SKU that moved `every` events past its last one.

        Movements save their SKU's snapshot themselves (see `_after`); this pass catches the SKUs
        that moved only through reads of other instances' events, and saves all on the way out."""
        dirty = [
            (sku, cached)
            for sku, cached in self._cache.items()
            if cached.loaded and cached.seq - cached.saved_seq >= every
        ]
        for sku, cached in dirty:
            await self._save_snapshot(sku, cached)
        return len(dirty)

    async def _save_snapshot(self, sku: str, cached: CachedLedger) -> None:
        state, seq, saved = cached.ledger, cached.seq, cached.saved_seq
        # Counted as saved from the start, so the movements that follow on a busy SKU do not all
        # write the same snapshot meanwhile.
        cached.saved_seq = max(saved, seq)
        try:
            await self._store.save_snapshot(sku, state, seq)
        except BaseException:
            if cached.saved_seq == seq:
                cached.saved_seq = saved
            raise

    async def _after(self, sku: str, decided: Decided) -> None:
        if decided.event is None:
            return
        # Alerts first: a slow or cancelled snapshot write must not delay or skip them.
        for alert in ledger.alerts(decided.before, decided.state, self._threshold):
            try:
                await self._alert(sku, alert, decided)
            except (PyMongoError, StreamBusy):
                # The movement itself is recorded; losing its alert must not fail the request.
                log.warning("could not record the %s alert of %s", alert.value, sku, exc_info=True)
        cached = self._cache.get(sku)
        if cached is not None and cached.loaded and cached.seq - cached.saved_seq >= SNAPSHOT_EVERY:
            # Saved by the movement itself, not only by the periodic pass, so however fast a SKU
            # moves, a cold instance folds at most SNAPSHOT_EVERY events after its snapshot,
            # never a ledger that grows forever (it is the audit trail).
            try:
                await self._save_snapshot(sku, cached)
            except PyMongoError:
                log.warning("could not save the stock snapshot of %s", sku, exc_info=True)

    async def _alert(self, sku: str, alert: Alert, decided: Decided) -> None:
        after = decided.state
        alerted = StockAlerted(
            sku, after.on_hand, after.reserved, after.available, self._threshold, decided.seq
        )
        # Derived from the ledger slot, so a repeated alert for the same movement is stored once.
        fact = NewEvent(alert.value, alerted.to_json(), f"{alert.value}:{sku}:{decided.seq}")
        head = self._alert_heads.get(sku, 0)
        stored = await append_at_end(self._events, alert_stream(sku), fact, after_seq=head)
        # A retried alert returns its stored event, which may lie below the head we know.
        self._alert_heads[sku] = max(self._alert_heads.get(sku, 0), stored.seq)


def _read_done(cached: CachedLedger, done: asyncio.Future[tuple[Ledger, int]]) -> None:
    if cached.reading is done:
        cached.reading = None
    if not done.cancelled():
        done.exception()  # its waiters got it; retrieved here so nobody logs it as lost
