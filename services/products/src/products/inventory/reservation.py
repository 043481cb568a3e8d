"""An order's reservation as a pure fold of its stream `reservation-<order_id>`, and the decisions that
move it: what may happen, never I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from products.inventory.errors import ReservationClosed, Shortage
from shopkit.clock import rfc3339
from shopkit.events import Event, NewEvent


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
