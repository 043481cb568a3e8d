"""An event's payload: what the publisher writes, and what a consumer reads back."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from shopkit.events import Payload


@dataclass(frozen=True, slots=True)
class Shipped(Payload):
    order_id: str
    parcels: tuple[str, ...]
    carrier: str | None = None


@dataclass(frozen=True, slots=True)
class ShippedOrder(Payload):
    """A consumer's narrower view of the same event."""

    order_id: str


def test_a_payload_round_trips_through_its_json() -> None:
    shipped = Shipped("order-1", ("p-1", "p-2"), "dhl")

    data = shipped.to_json()

    assert data == {"order_id": "order-1", "parcels": ["p-1", "p-2"], "carrier": "dhl"}
    assert Shipped.from_json(data) == shipped


def test_a_consumer_reads_only_the_fields_it_declares() -> None:
    data = {**Shipped("order-1", ("p-1",)).to_json(), "added_later": 1}

    assert ShippedOrder.from_json(data) == ShippedOrder("order-1")
    assert Shipped.from_json(data) == Shipped("order-1", ("p-1",))


def test_a_missing_required_field_is_a_key_error_and_a_missing_optional_one_its_default() -> None:
    assert Shipped.from_json({"order_id": "order-1", "parcels": []}).carrier is None

    with pytest.raises(KeyError, match="parcels"):
        Shipped.from_json({"order_id": "order-1"})
