"""The stock ledger and order reservations as pure folds and decisions: what may happen, never I/O.

A SKU's stock is the stream `stock-<sku>`; an order's reservation is the stream `reservation-<order_id>`.
Each decision here looks at the folded state and either refuses (a Problem), does nothing (None: it
already happened) or names the one event to append. Every ledger event carries the levels it results
in, so a consumer never has to fold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from products.events import Alert, Movement
from shopkit.clock import rfc3339
from shopkit.events import Event, NewEvent
from shopkit.problems import Conflict, NotFound, ValidationFailed

# --- the situations, as the kit's problem types


class SkuNotFound(NotFound):
    slug, title = "sku-not-found", "SKU not found"


class UnknownSkus(ValidationFailed):
    slug, title = "unknown-skus", "Unknown SKUs"


class StockNotTracked(Conflict):
    slug, title = "stock-not-tracked", "Stock is not tracked for this SKU"


class InsufficientStock(Conflict):
    slug, title = "insufficient-stock", "Insufficient stock"

    def __init__(self, shortages: Sequence[Shortage]) -> None:
        self.shortages = tuple(shortages)
        skus = ", ".join(s.sku for s in self.shortages)
        super().__init__(
            f"not enough stock for: {skus}",
            unavailable=[s.to_json() for s in self.shortages],
        )


class StockBelowReserved(Conflict):
    slug, title = "stock-below-reserved", "Stock would fall below what is reserved"


class ReservationNotFound(NotFound):
    slug, title = "reservation-not-found", "Reservation not found"


class ReservationMismatch(ValidationFailed):
    slug, title = "reservation-mismatch", "This order already reserved other lines"


class ReservationInProgress(Conflict):
    slug, title = "reservation-in-progress", "The reservation of this order is being made"

    def __init__(self, detail: str | None = None, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class ReservationClosed(Conflict):
    """Commit of a released reservation, release of a committed one, or a reservation that was
    released while it was being made."""

    slug, title = "reservation-closed", "The reservation is no longer held"


# --- stock


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
    data = {
        "sku": sku,
        **fields,
        "on_hand": after.on_hand,
        "reserved": after.reserved,
        "available": after.available,
    }
    return NewEvent(kind.value, data, id=event_id)


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


# --- reservations


class ReservationState(StrEnum):
    REQUESTED = "requested"  # claimed; its lines are being reserved
    HELD = "held"
    REFUSED = "refused"  # a line was short; nothing is held; the order may try again
    ABANDONED = "abandoned"  # its maker died or gave up; nothing is held; may try again
    COMMITTED = "committed"
    RELEASED = "released"
    EXPIRED = "expired"


RETRYABLE = frozenset({ReservationState.REFUSED, ReservationState.ABANDONED})
_NEXT = {
    ReservationState.REQUESTED: frozenset(
        {
            ReservationState.HELD,
            ReservationState.REFUSED,
            ReservationState.ABANDONED,
            ReservationState.RELEASED,
            ReservationState.EXPIRED,
        }
    ),
    ReservationState.HELD: frozenset(
        {ReservationState.COMMITTED, ReservationState.RELEASED, ReservationState.EXPIRED}
    ),
}
REQUESTED_EVENT = "reservation.requested"
_STATES = frozenset(state.value for state in ReservationState)


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    quantity: int
    tracked: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"sku": self.sku, "quantity": self.quantity, "tracked": self.tracked}


@dataclass(frozen=True, slots=True)
class Shortage:
    sku: str
    requested: int
    available: int

    def to_json(self) -> dict[str, Any]:
        return {"sku": self.sku, "requested": self.requested, "available": self.available}


@dataclass(frozen=True, slots=True)
class Reservation:
    """An order's latest reservation attempt, folded from its stream."""

    order_id: str
    attempt: int
    lines: tuple[Line, ...]
    state: ReservationState
    requested_at: datetime
    expires_at: datetime
    updated_at: datetime
    held_at: datetime | None = None
    # Who moved it to its state and why (the line events that follow carry the same).
    actor: str | None = None
    reason: str | None = None
    unavailable: tuple[Shortage, ...] = ()

    @property
    def tracked_lines(self) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line.tracked)

    def asks_for(self, lines: Sequence[tuple[str, int]]) -> bool:
        return [(line.sku, line.quantity) for line in self.lines] == list(lines)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "order_id": self.order_id,
            "state": self.state.value,
            "lines": [line.to_json() for line in self.lines],
            "expires_at": rfc3339(self.expires_at),
            "requested_at": rfc3339(self.requested_at),
            "updated_at": rfc3339(self.updated_at),
        }
        if self.reason:
            document["reason"] = self.reason
        if self.unavailable:
            document["unavailable"] = [s.to_json() for s in self.unavailable]
        return document


def merge_lines(lines: Iterable[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    """One line per SKU, in SKU order: the order every reservation takes its SKUs in."""
    merged: dict[str, int] = {}
    for sku, quantity in lines:
        merged[sku] = merged.get(sku, 0) + quantity
    return tuple(sorted(merged.items()))


def request(
    order_id: str,
    attempt: int,
    lines: Sequence[Line],
    requested_at: datetime,
    expires_at: datetime,
    actor: str,
) -> NewEvent:
    return NewEvent(
        REQUESTED_EVENT,
        {
            "order_id": order_id,
            "attempt": attempt,
            "lines": [line.to_json() for line in lines],
            "requested_at": rfc3339(requested_at),
            "expires_at": rfc3339(expires_at),
            "actor": actor,
        },
    )


def conclude(
    current: Reservation,
    state: ReservationState,
    actor: str,
    reason: str | None = None,
    unavailable: Sequence[Shortage] = (),
) -> NewEvent:
    if state not in _NEXT.get(current.state, frozenset()):
        raise ReservationClosed(f"the reservation is {current.state}, it cannot become {state}")
    data: dict[str, Any] = {"attempt": current.attempt, "actor": actor, "reason": reason}
    if unavailable:
        data["unavailable"] = [s.to_json() for s in unavailable]
    return NewEvent(f"reservation.{state.value}", data)


def fold_reservation(current: Reservation | None, event: Event) -> Reservation | None:
    data = event.data
    if event.type == REQUESTED_EVENT:
        return Reservation(
            order_id=data["order_id"],
            attempt=int(data["attempt"]),
            lines=tuple(Line(**line) for line in data["lines"]),
            state=ReservationState.REQUESTED,
            requested_at=datetime.fromisoformat(data["requested_at"]),
            expires_at=datetime.fromisoformat(data["expires_at"]),
            updated_at=event.occurred_at,
            actor=data.get("actor"),
        )
    kind = event.type.removeprefix("reservation.")
    if current is None or kind not in _STATES:
        return current
    state = ReservationState(kind)
    return replace(
        current,
        state=state,
        updated_at=event.occurred_at,
        held_at=event.occurred_at if state is ReservationState.HELD else current.held_at,
        actor=data.get("actor"),
        reason=data.get("reason"),
        unavailable=tuple(Shortage(**s) for s in data.get("unavailable", ())),
    )
