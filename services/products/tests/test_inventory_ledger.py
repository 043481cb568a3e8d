"""The ledger's folds and decisions on their own: no database, just what may happen to stock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from products.events import Alert
from products.inventory import ledger as rules
from products.inventory import reservation as rules2
from products.inventory.errors import InsufficientStock, ReservationClosed, StockBelowReserved
from products.inventory.ledger import Ledger
from products.inventory.reservation import Line, ReservationState
from shopkit.events import Event, NewEvent

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def appended(ledger: Ledger, wanted: NewEvent | None, seq: int = 1) -> tuple[Ledger, Event]:
    assert wanted is not None
    event = Event(
        id=wanted.id or f"e{seq}",
        stream_id="stock-TEE",
        seq=seq,
        type=wanted.type,
        data=wanted.data,
        occurred_at=NOW,
    )
    return rules.fold(ledger, event), event


def stocked(on_hand: int) -> Ledger:
    return appended(Ledger(), rules.receive(Ledger(), "TEE", on_hand, "staff-1", "delivery", None))[
        0
    ]


def test_each_movement_records_the_levels_it_results_in() -> None:
    ledger = stocked(10)

    ledger, reserved = appended(
        ledger, rules.reserve(ledger, "TEE", "o-1", 1, 4, "service:orders", NOW)
    )
    ledger, committed = appended(ledger, rules.commit(ledger, "TEE", "o-1", 1, "svc", "paid"))

    assert (reserved.data["on_hand"], reserved.data["reserved"], reserved.data["available"]) == (
        10,
        4,
        6,
    )
    assert reserved.id == "reserve:o-1:1:TEE"
    assert (committed.data["on_hand"], committed.data["reserved"]) == (6, 0)
    assert (ledger.on_hand, ledger.reserved, ledger.available, dict(ledger.holds)) == (6, 0, 6, {})


def test_a_reservation_is_refused_beyond_what_is_available_and_repeated_it_does_nothing() -> None:
    ledger = stocked(3)
    ledger, _ = appended(ledger, rules.reserve(ledger, "TEE", "o-1", 1, 2, "svc", NOW))

    with pytest.raises(InsufficientStock) as refused:
        rules.reserve(ledger, "TEE", "o-2", 1, 2, "svc", NOW)

    assert refused.value.extensions["unavailable"] == [
        {"sku": "TEE", "requested": 2, "available": 1}
    ]
    assert rules.reserve(ledger, "TEE", "o-1", 1, 2, "svc", NOW) is None


def test_release_and_commit_act_only_on_the_attempt_that_holds() -> None:
    ledger = stocked(3)
    ledger, _ = appended(ledger, rules.reserve(ledger, "TEE", "o-1", 2, 2, "svc", NOW))

    assert rules.release(ledger, "TEE", "o-1", 1, "svc", "stale attempt") is None
    assert rules.commit(ledger, "TEE", "o-9", 1, "svc", "paid") is None
    released = rules.release(ledger, "TEE", "o-1", 2, "svc", "cancelled")
    assert released is not None
    assert released.id == "release:o-1:2:TEE"
    ledger, _ = appended(ledger, released)
    assert rules.release(ledger, "TEE", "o-1", 2, "svc", "cancelled") is None
    assert (ledger.reserved, ledger.available) == (0, 3)


def test_an_adjustment_cannot_take_available_below_zero() -> None:
    ledger = stocked(5)
    ledger, _ = appended(ledger, rules.reserve(ledger, "TEE", "o-1", 1, 4, "svc", NOW))

    with pytest.raises(StockBelowReserved):
        rules.adjust(ledger, "TEE", -2, "staff-1", "recount", None)
    adjusted = rules.adjust(ledger, "TEE", -1, "staff-1", "recount", "adjustment:TEE:k")

    assert adjusted.data["quantity"] == -1
    assert adjusted.data["available"] == 0


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (7, 5, [Alert.LOW]),
        (5, 4, []),
        (6, 0, [Alert.LOW, Alert.OUT]),
        (3, 0, [Alert.OUT]),
        (0, 3, []),
        (0, 0, []),
    ],
)
def test_alerts_fire_only_when_crossing_downwards(
    before: int, after: int, expected: list[Alert]
) -> None:
    assert rules.alerts(Ledger(on_hand=before), Ledger(on_hand=after), threshold=5) == expected


def test_a_movement_shows_what_it_changed() -> None:
    ledger = stocked(5)
    ledger, reserved = appended(ledger, rules.reserve(ledger, "TEE", "o-1", 1, 2, "svc", NOW), 2)
    _, committed = appended(ledger, rules.commit(ledger, "TEE", "o-1", 1, "svc", "paid"), 3)

    assert [
        (m["type"], m["on_hand_change"], m["reserved_change"])
        for m in map(rules.movement_json, (reserved, committed))
    ] == [("reserved", 0, 2), ("committed", -2, -2)]


def test_lines_are_merged_per_sku_and_taken_in_sku_order() -> None:
    assert rules2.merge_lines([("B", 1), ("A", 2), ("B", 3)]) == (("A", 2), ("B", 4))


def reservation_events(*types: str) -> list[Event]:
    request = rules2.request("o-1", 1, [Line("TEE", 2)], NOW, NOW + timedelta(minutes=15), "svc")
    events = [Event("r1", "reservation-o-1", 1, request.type, request.data, NOW)]
    for seq, kind in enumerate(types, start=2):
        events.append(Event(f"r{seq}", "reservation-o-1", seq, kind, {"attempt": 1}, NOW))
    return events


def fold_reservation(events: list[Event]) -> rules2.Reservation | None:
    reservation = None
    for event in events:
        reservation = rules2.fold_reservation(reservation, event)
    return reservation


def test_a_held_reservation_ends_committed_released_or_expired_and_nothing_after() -> None:
    held = fold_reservation(reservation_events("reservation.held"))
    assert held is not None
    assert held.state is ReservationState.HELD
    assert held.held_at == NOW

    for state in (ReservationState.COMMITTED, ReservationState.RELEASED, ReservationState.EXPIRED):
        assert rules2.conclude(held, state, "svc").type == f"reservation.{state.value}"
    with pytest.raises(ReservationClosed):
        rules2.conclude(held, ReservationState.REFUSED, "svc")

    committed = fold_reservation(reservation_events("reservation.held", "reservation.committed"))
    assert committed is not None
    with pytest.raises(ReservationClosed):
        rules2.conclude(committed, ReservationState.RELEASED, "svc")
    assert committed.to_json()["state"] == "committed"
