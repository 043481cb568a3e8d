"""A SKU's stock ledger as a pure fold of its stream `stock-<sku>`, and the decisions that extend it.

Each decision here looks at the folded ledger and either refuses (a Problem), does nothing (None: it
already happened) or names the one event to append; never I/O. Every ledger event carries the levels
it results in, so a consumer never has to fold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from products.events import Alert, Movement, StockMoved
from products.inventory.errors import (
    InsufficientStock,
    ReservationInProgress,
    Shortage,
    StockBelowReserved,
)
from shopkit.clock import rfc3339
from shopkit.events import Event, NewEvent


@dataclass(frozen=True, slots=True)
class StockLevel:
    sku: str
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @property
    def in_stock(self) -> bool:
        return self.available > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "tracked": True,
            "on_hand": self.on_hand,
            "reserved": self.reserved,
            "available": self.available,
            "in_stock": self.in_stock,
        }


def untracked_json(sku: str) -> dict[str, Any]:
    """An untracked SKU is always available and has no counts."""
    return {
        "sku": sku,
        "tracked": False,
        "on_hand": None,
        "reserved": None,
        "available": None,
        "in_stock": True,
    }


@dataclass(frozen=True, slots=True)
class Hold:
    """What one attempt of one order holds on a SKU."""

    attempt: int
    quantity: int


@dataclass(frozen=True, slots=True)
class Ledger:
    """A SKU's folded stream. `holds` is never mutated: a fold builds a new mapping."""

    on_hand: int = 0
    reserved: int = 0
    holds: Mapping[str, Hold] = field(default_factory=dict)

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def level(self, sku: str) -> StockLevel:
        return StockLevel(sku, self.on_hand, self.reserved)

    def holding(self, order_id: str, attempt: int) -> Hold | None:
        hold = self.holds.get(order_id)
        return hold if hold is not None and hold.attempt == attempt else None


def fold(ledger: Ledger, event: Event) -> Ledger:
    data = event.data
    quantity = int(data.get("quantity", 0))
    if event.type in (Movement.RECEIVED, Movement.ADJUSTED):
        return replace(ledger, on_hand=ledger.on_hand + quantity)
    if event.type == Movement.RESERVED:
        holds = {**ledger.holds, data["order_id"]: Hold(int(data["attempt"]), quantity)}
        return Ledger(ledger.on_hand, ledger.reserved + quantity, holds)
    if event.type in (Movement.RELEASED, Movement.COMMITTED):
        holds = {k: v for k, v in ledger.holds.items() if k != data["order_id"]}
        sold = quantity if event.type == Movement.COMMITTED else 0
        return Ledger(ledger.on_hand - sold, ledger.reserved - quantity, holds)
    return ledger  # a type this version does not know changes nothing it counts


def fold_all(ledger: Ledger, seq: int, events: Iterable[Event]) -> tuple[Ledger, int]:
    for event in events:
        ledger, seq = fold(ledger, event), event.seq
    return ledger, seq


def _movement(
    kind: Movement, sku: str, after: Ledger, event_id: str | None, **fields: Any
) -> NewEvent:
    moved = StockMoved(
        sku=sku, on_hand=after.on_hand, reserved=after.reserved, available=after.available, **fields
    )
    return NewEvent(kind.value, moved.to_json(), id=event_id)


def receive(
    ledger: Ledger, sku: str, quantity: int, actor: str, reason: str, event_id: str | None
) -> NewEvent:
    after = replace(ledger, on_hand=ledger.on_hand + quantity)
    return _movement(
        Movement.RECEIVED, sku, after, event_id, quantity=quantity, actor=actor, reason=reason
    )


def adjust(
    ledger: Ledger, sku: str, delta: int, actor: str, reason: str, event_id: str | None
) -> NewEvent:
    """A count correction (shrinkage, damage, a recount); `quantity` is the signed change."""
    after = replace(ledger, on_hand=ledger.on_hand + delta)
    if after.available < 0:
        raise StockBelowReserved(
            f"on hand would be {after.on_hand} while {ledger.reserved} are reserved",
            on_hand=ledger.on_hand,
            reserved=ledger.reserved,
            available=ledger.available,
        )
    return _movement(
        Movement.ADJUSTED, sku, after, event_id, quantity=delta, actor=actor, reason=reason
    )


def reserve(
    ledger: Ledger,
    sku: str,
    order_id: str,
    attempt: int,
    quantity: int,
    actor: str,
    expires_at: datetime,
) -> NewEvent | None:
    held = ledger.holds.get(order_id)
    if held is not None:
        if held.attempt == attempt:
            return None  # this attempt already holds it
        # Attempts of one order follow each other, and an attempt's lines are released before
        # the next starts; meeting an older hold means that order was broken: refuse, never stack.
        raise ReservationInProgress(f"an earlier reservation of this order still holds {sku}")
    if ledger.available < quantity:
        raise InsufficientStock([Shortage(sku, quantity, max(ledger.available, 0))])
    after = Ledger(ledger.on_hand, ledger.reserved + quantity, ledger.holds)
    return _movement(
        Movement.RESERVED,
        sku,
        after,
        f"reserve:{order_id}:{attempt}:{sku}",
        quantity=quantity,
        order_id=order_id,
        attempt=attempt,
        expires_at=rfc3339(expires_at),
        actor=actor,
        reason="order reserved",
    )


def release(
    ledger: Ledger, sku: str, order_id: str, attempt: int, actor: str, reason: str
) -> NewEvent | None:
    held = ledger.holding(order_id, attempt)
    if held is None:
        return None  # never reserved, or already released or committed
    after = Ledger(ledger.on_hand, ledger.reserved - held.quantity, ledger.holds)
    return _movement(
        Movement.RELEASED,
        sku,
        after,
        f"release:{order_id}:{attempt}:{sku}",
        quantity=held.quantity,
        order_id=order_id,
        attempt=attempt,
        actor=actor,
        reason=reason,
    )


def commit(
    ledger: Ledger, sku: str, order_id: str, attempt: int, actor: str, reason: str
) -> NewEvent | None:
    held = ledger.holding(order_id, attempt)
    if held is None:
        return None
    after = Ledger(ledger.on_hand - held.quantity, ledger.reserved - held.quantity, ledger.holds)
    return _movement(
        Movement.COMMITTED,
        sku,
        after,
        f"commit:{order_id}:{attempt}:{sku}",
        quantity=held.quantity,
        order_id=order_id,
        attempt=attempt,
        actor=actor,
        reason=reason,
    )


def alerts(before: Ledger, after: Ledger, threshold: int) -> list[Alert]:
    """Alerts fire on the way down, once per crossing, never while stock stays low."""
    found = []
    if before.available > threshold >= after.available:
        found.append(Alert.LOW)
    if before.available > 0 >= after.available:
        found.append(Alert.OUT)
    return found


def movement_json(event: Event) -> dict[str, Any]:
    """One ledger entry as the audit trail shows it: what changed, who, why, when, and the result."""
    data = event.data
    quantity = int(data.get("quantity", 0))
    on_hand_change = {
        Movement.RECEIVED: quantity,
        Movement.ADJUSTED: quantity,
        Movement.COMMITTED: -quantity,
    }.get(Movement(event.type), 0)
    reserved_change = {
        Movement.RESERVED: quantity,
        Movement.RELEASED: -quantity,
        Movement.COMMITTED: -quantity,
    }.get(Movement(event.type), 0)
    return {
        "seq": event.seq,
        "type": event.type.removeprefix("stock."),
        "quantity": quantity,
        "on_hand_change": on_hand_change,
        "reserved_change": reserved_change,
        "order_id": data.get("order_id"),
        "actor": data.get("actor"),
        "reason": data.get("reason"),
        "occurred_at": rfc3339(event.occurred_at),
        "on_hand": data["on_hand"],
        "reserved": data["reserved"],
        "available": data["available"],
    }
