"""The payments of orders: their streams, the stores beside them and Stripe, in one place."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from payments import model
from payments.gateway import StripeGateway
from payments.metrics import PaymentMetrics
from payments.model import Payment
from payments.store import PaymentStore
from shopkit.events import Decision, EventStore, Outcome, decide


class Payments:
    def __init__(
        self,
        events: EventStore,
        store: PaymentStore,
        stripe: StripeGateway,
        metrics: PaymentMetrics,
        *,
        reconcile_after: timedelta,
    ) -> None:
        self.events = events
        self.store = store
        self.stripe = stripe
        self.metrics = metrics
        self.reconcile_after = reconcile_after
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def load(self, order_id: str) -> tuple[Payment, int]:
        """The order's payment folded from its stream (a handful of events), and its seq."""
        payment, seq = Payment(order_id=order_id), 0
        for event in await self.events.load(model.stream_id(order_id)):
            payment, seq = model.fold(payment, event), event.seq
        return payment, seq

    async def decide(
        self, order_id: str, decision: Decision[Payment], *, event_id: str | None = None
    ) -> Outcome[Payment]:
        payment, seq = await self.load(order_id)
        return await decide(
            self.events,
            model.stream_id(order_id),
            payment,
            model.fold,
            decision,
            after_seq=seq,
            event_id=event_id,
        )

    @contextlib.asynccontextmanager
    async def one_at_a_time(self, order_id: str, wait: float) -> AsyncIterator[None]:
        """Run calls for one order one after the other in this process; TimeoutError after
        waiting `wait` seconds for the turn."""
        lock, users = self._locks.get(order_id, (asyncio.Lock(), 0))
        self._locks[order_id] = (lock, users + 1)
        try:
            async with asyncio.timeout(wait):
                await lock.acquire()
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[order_id]
            if users == 1:
                del self._locks[order_id]
            else:
                self._locks[order_id] = (lock, users - 1)


def fresh(outcome: Outcome[Payment]) -> bool:
    """Whether this outcome appended its event now (not a replay of an earlier append)."""
    return outcome.event is not None and outcome.before is not outcome.state
