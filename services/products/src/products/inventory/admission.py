"""Admission: in-process promises that let only as many orders for a SKU try the ledger as its level covers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from products.inventory.errors import Shortage
from products.inventory.reservation import Line
from products.inventory.stock import CachedLedger, Stock

# A steady flow of small orders could keep a SKU promised forever: past this, an order stops
# waiting and lets the ledger decide, as it would without promises.
PROMISE_PATIENCE = 2.0


@dataclass(slots=True)
class Admission:
    """The units one reservation was promised in this process, per SKU, until its holds are done;
    or the lines that are short."""

    promised: dict[str, tuple[CachedLedger, int]] = field(default_factory=dict)
    shortages: list[Shortage] = field(default_factory=list)

    def release(self, sku: str) -> None:
        found = self.promised.pop(sku, None)
        if found is not None:
            cached, quantity = found
            cached.promised -= quantity
            waking, cached.promises_changed = cached.promises_changed, asyncio.Event()
            waking.set()

    def release_all(self) -> None:
        for sku in list(self.promised):
            self.release(sku)


@contextlib.asynccontextmanager
async def admit(stock: Stock, lines: Sequence[Line]) -> AsyncIterator[Admission]:
    """Promise each tracked line its units in this process, or find the lines that are short.

    A burst of orders for one SKU would otherwise all see the same level, and all write an
    index entry and try the ledger, where most then fail. Promises let only as many through
    as the level covers; the others wait for the holds in flight, and once none is left, a
    level read from the stream that does not cover them refuses them with no more writes.
    Promises are taken in SKU order, so two orders never wait on each other; the ledger
    still decides for real."""
    admission = Admission()
    try:
        for line in lines:
            if not line.tracked:
                continue
            if admission.shortages:
                admission.shortages += await stock.shortages([line])
                continue
            shortage = await _promise(stock, line, admission)
            if shortage is not None:
                admission.shortages.append(shortage)
                admission.release_all()  # a refused order keeps nobody waiting
        yield admission
    finally:
        admission.release_all()


async def _promise(stock: Stock, line: Line, admission: Admission) -> Shortage | None:
    confirmed = False  # the level was read from the stream since the last wait
    patience = time.monotonic() + PROMISE_PATIENCE
    while True:
        cached = stock.cached(line.sku)
        trusted = cached.loaded and (confirmed or not cached.unsure)
        enough = cached.ledger.available - cached.promised >= line.quantity
        if trusted and (enough or time.monotonic() > patience):
            cached.promised += line.quantity
            admission.promised[line.sku] = (cached, line.quantity)
            return None
        if cached.promised:
            # A hold in flight here may change the answer.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, patience - time.monotonic())):
                    await cached.promises_changed.wait()
            confirmed = False
            continue
        if confirmed:
            return Shortage(line.sku, line.quantity, max(cached.ledger.available, 0))
        await stock.current(line.sku)
        confirmed = True
