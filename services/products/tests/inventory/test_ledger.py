"""The ledger's folds and decisions on their own: no database, just what may happen to stock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from products.events import Alert
from products.inventory import ledger
from products.inventory.errors import InsufficientStock, StockBelowReserved
from products.inventory.ledger import Ledger
from shopkit.events import Event, NewEvent

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def appended(state: Ledger, wanted: NewEvent | None, seq: int = 1) -> tuple[Ledger, Event]:
    assert wanted is not None
    event = Event(
        id=wanted.id or f"e{seq}",
        stream_id="stock-TEE",
        seq=seq,
        type=wanted.type,
        data=wanted.data,
        occurred_at=NOW,
    )
    return ledger.fold(state, event), event


def stocked(on_hand: int) -> Ledger:
    return appended(
        Ledger(), ledger.receive(Ledger(), "TEE", on_hand, "staff-1", "delivery", None)
    )[0]


def test_each_movement_records_the_levels_it_results_in() -> None:
    state = stocked(10)

    state, reserved = appended(
        state, ledger.reserve(state, "TEE", "o-1", 1, 4, "service:orders", NOW)
    )
    state, committed = appended(state, ledger.commit(state, "TEE", "o-1", 1, "svc", "paid"))

    assert (reserved.data["on_hand"], reserved.data["reserved"], reserved.data["available"]) == (
        10,
        4,
        6,
    )
    assert reserved.id == "reserve:o-1:1:TEE"
    assert (committed.data["on_hand"], committed.data["reserved"]) == (6, 0)
    assert (state.on_hand, state.reserved, state.available, dict(state.holds)) == (6, 0, 6, {})


def test_a_reservation_is_refused_beyond_what_is_available_and_repeated_it_does_nothing() -> None:
    state = stocked(3)
    state, _ = appended(state, ledger.reserve(state, "TEE", "o-1", 1, 2, "svc", NOW))

    with pytest.raises(InsufficientStock) as refused:
        ledger.reserve(state, "TEE", "o-2", 1, 2, "svc", NOW)

    assert refused.value.extensions["unavailable"] == [
        {"sku": "TEE", "requested": 2, "available": 1}
    ]
    assert ledger.reserve(state, "TEE", "o-1", 1, 2, "svc", NOW) is None


def test_release_and_commit_act_only_on_the_attempt_that_holds() -> None:
    state = stocked(3)
    state, _ = appended(state, ledger.reserve(state, "TEE", "o-1", 2, 2, "svc", NOW))

    assert ledger.release(state, "TEE", "o-1", 1, "svc", "stale attempt") is None
    assert ledger.commit(state, "TEE", "o-9", 1, "svc", "paid") is None
    released = ledger.release(state, "TEE", "o-1", 2, "svc", "cancelled")
    assert released is not None
    assert released.id == "release:o-1:2:TEE"
    state, _ = appended(state, released)
    assert ledger.release(state, "TEE", "o-1", 2, "svc", "cancelled") is None
    assert (state.reserved, state.available) == (0, 3)


def test_an_adjustment_cannot_take_available_below_zero() -> None:
    state = stocked(5)
    state, _ = appended(state, ledger.reserve(state, "TEE", "o-1", 1, 4, "svc", NOW))

    with pytest.raises(StockBelowReserved):
        ledger.adjust(state, "TEE", -2, "staff-1", "recount", None)
    adjusted = ledger.adjust(state, "TEE", -1, "staff-1", "recount", "adjustment:TEE:k")

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
    assert ledger.alerts(Ledger(on_hand=before), Ledger(on_hand=after), threshold=5) == expected


def test_a_movement_shows_what_it_changed() -> None:
    state = stocked(5)
    state, reserved = appended(state, ledger.reserve(state, "TEE", "o-1", 1, 2, "svc", NOW), 2)
    _, committed = appended(state, ledger.commit(state, "TEE", "o-1", 1, "svc", "paid"), 3)

    assert [
        (m["type"], m["on_hand_change"], m["reserved_change"])
        for m in map(ledger.movement_json, (reserved, committed))
    ] == [("reserved", 0, 2), ("committed", -2, -2)]
