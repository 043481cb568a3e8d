"""An order's reservation folds and decisions on their own: no database, just what may happen to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from products.inventory import reservation
from products.inventory.errors import ReservationClosed
from products.inventory.reservation import Line, Reservation, ReservationState
from shopkit.events import Event

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_lines_are_merged_per_sku_and_taken_in_sku_order() -> None:
    assert reservation.merge_lines([("B", 1), ("A", 2), ("B", 3)]) == (("A", 2), ("B", 4))


def reservation_events(*types: str) -> list[Event]:
    request = reservation.request(
        "o-1", 1, [Line("TEE", 2)], NOW, NOW + timedelta(minutes=15), "svc"
    )
    events = [Event("r1", "reservation-o-1", 1, request.type, request.data, NOW)]
    for seq, kind in enumerate(types, start=2):
        events.append(Event(f"r{seq}", "reservation-o-1", seq, kind, {"attempt": 1}, NOW))
    return events


def fold_reservation(events: list[Event]) -> Reservation | None:
    current = None
    for event in events:
        current = reservation.fold_reservation(current, event)
    return current


def test_a_held_reservation_ends_committed_released_or_expired_and_nothing_after() -> None:
    held = fold_reservation(reservation_events("reservation.held"))
    assert held is not None
    assert held.state is ReservationState.HELD
    assert held.held_at == NOW

    for state in (ReservationState.COMMITTED, ReservationState.RELEASED, ReservationState.EXPIRED):
        assert reservation.conclude(held, state, "svc").type == f"reservation.{state.value}"
    with pytest.raises(ReservationClosed):
        reservation.conclude(held, ReservationState.REFUSED, "svc")

    committed = fold_reservation(reservation_events("reservation.held", "reservation.committed"))
    assert committed is not None
    with pytest.raises(ReservationClosed):
        reservation.conclude(committed, ReservationState.RELEASED, "svc")
    assert committed.to_json()["state"] == "committed"
