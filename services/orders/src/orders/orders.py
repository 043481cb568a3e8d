"""Orders as streams: read one (its projection, then any newer event), change one (one decision).

An order is the stream `order-<id>` in the relayed `events` collection, so each change is also
the event other services follow. The projection (`OrderStore`) is a cache: a read folds in the
events newer than it, and a write's decision is appended at the version it was decided on, so a
stale projection costs a retry, never a lost change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from orders.events import OrderEvent
from orders.model import Order, fold
from orders.store import OrderStore
from shopkit.commits import AfterCommit
from shopkit.events import ConcurrencyConflict, Event, EventStore, NewEvent, decide

Decision = Callable[[Order], NewEvent | None]


def stream(order_id: str) -> str:
    return f"order-{order_id}"


@dataclass(frozen=True, slots=True)
class Changed:
    order: Order
    event: Event | None  # None: the decision appended nothing


class Orders:
    def __init__(self, events: EventStore, store: OrderStore, after_commit: AfterCommit) -> None:
        self.events = events
        self.store = store
        self._after_commit = after_commit

    async def get(self, order_id: str) -> Order | None:
        """The order at its stream's head; None if it was never placed."""
        known = await self.store.get(order_id)
        seq = known.version if known is not None else 0
        newer = await self.events.load(stream(order_id), seq)
        order: Order | None = known
        for event in newer:
            order = fold(order, event)
        if newer and order is not None:
            await self._after_commit("order projection", self.store.save(order))
        return order

    async def first_event(self, order_id: str) -> Event | None:
        return await self.events.get(stream(order_id), 1)

    async def place(self, order: Order) -> Order | None:
        """Append the order's first event: None when its slot holds a given-up checkout."""
        try:
            event = await self.events.append(
                stream(order.id), 0, OrderEvent.PLACED, order.placed_json(), f"{order.id}:placed"
            )
        except ConcurrencyConflict:
            return None  # the sweeper's cancellation took the slot first
        placed = fold(None, event)
        assert placed is not None
        await self._after_commit("order projection", self.store.save(placed))
        # Watched from now on for its expiry (left as it is, the watch falls due at the checkout's
        # deadline, and the sweeper moves it then).
        await self._after_commit("order watch", self.store.reschedule(placed.id, placed.expires_at))
        return placed

    async def change(
        self,
        order: Order,
        decision: Decision | Callable[[Order], Awaitable[NewEvent | None]],
        event_id: str | None = None,
    ) -> Changed:
        """Let `decision` refuse (a problem), pass (None) or name the next event of `order`, and
        append it at the version after the one decided on; a lost race decides again."""

        def decided(current: Order | None) -> NewEvent | Awaitable[NewEvent | None] | None:
            assert current is not None  # a placed order's stream never loses its first event
            return decision(current)

        initial: Order | None = order
        outcome = await decide(
            self.events,
            stream(order.id),
            initial,
            fold,
            decided,
            after_seq=order.version,
            event_id=event_id,
        )
        after = outcome.state
        assert after is not None
        if outcome.event is not None or after.version != order.version:
            await self._after_commit("order projection", self.store.save(after))
        return Changed(after, outcome.event)
