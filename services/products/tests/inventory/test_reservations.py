"""Reservations: all lines or none under any concurrency, idempotent per order, released or committed
once, expired exactly once by any number of sweepers, and driven by orders' events."""

from __future__ import annotations

import asyncio
import collections
import re
import uuid
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from products_support import Roles
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from test_inventory_support import (
    Start,
    Stock,
    eventually,
    inventory_of,
    new_order,
)

from products.inventory import sweeper
from products.inventory.reservation import REQUESTED_EVENT
from products.inventory.reservations import RESERVATIONS_COLLECTION, reservation_stream
from shopkit import broker, clock
from shopkit.events import Event, EventStore, encode


async def reservation_history(db: AsyncDatabase[Any], order_id: str) -> list[str]:
    events = await EventStore(db, RESERVATIONS_COLLECTION).load(reservation_stream(order_id))
    return [event.type.removeprefix("reservation.") for event in events]


async def _race(instances: list[Stock], orders: int, lines: dict[str, int]) -> list[Any]:
    """`orders` orders reserving `lines` at once, spread over the instances."""
    return await asyncio.gather(
        *(instances[n % len(instances)].reserve(f"order-{n}", lines) for n in range(orders))
    )


async def test_200_concurrent_reservations_of_one_unit_with_50_available_hold_exactly_50(
    stock: Stock,
) -> None:
    # given 50 units
    await stock.receive("TEE-M", 50)

    # when 200 orders reserve one unit each, all at once
    answers = await _race([stock], 200, {"TEE-M": 1})

    # then 50 hold one, 150 get a clean 409 naming the SKU, none gets a 5xx
    assert collections.Counter(a.status for a in answers) == {201: 50, 409: 150}
    refusals = [await a.json() for a in answers if a.status == 409]
    assert all(r["type"].endswith("/insufficient-stock") for r in refusals)
    assert all(
        r["unavailable"] == [{"sku": "TEE-M", "requested": 1, "available": 0}] for r in refusals
    )
    assert await stock.counts("TEE-M") == (50, 50, 0)
    ledger = await stock.assert_ledger_adds_up("TEE-M")
    held = {m["order_id"] for m in ledger if m["type"] == "reserved"}
    assert len(held) == 50
    assert {(await a.json())["order_id"] for a in answers if a.status == 201} == held


async def test_200_concurrent_reservations_over_two_instances_hold_exactly_50(
    start: Start, roles: Roles
) -> None:
    # given two instances of the service on one database, and 50 units
    first, second = Stock(await start(), roles), Stock(await start(), roles)
    await first.receive("TEE-M", 50)

    # when 200 orders reserve one unit each through either instance at once
    answers = await _race([first, second], 200, {"TEE-M": 1})

    # then the instances together hold exactly 50, and both read the same ledger
    assert collections.Counter(a.status for a in answers) == {201: 50, 409: 150}
    assert await first.counts("TEE-M") == await second.counts("TEE-M") == (50, 50, 0)
    await second.assert_ledger_adds_up("TEE-M")


async def test_a_multi_line_order_with_one_short_line_holds_nothing(stock: Stock) -> None:
    # given enough shirts in S and L but only one in M
    await stock.receive("TEE-S", 10)
    await stock.receive("TEE-M", 1)
    await stock.receive("TEE-L", 5)

    # when an order asks for S, M and L, three of M and six of L
    answer = await stock.reserve("order-short", {"TEE-S": 2, "TEE-M": 3, "TEE-L": 6})

    # then it is refused naming both short lines, and no line was held, even for a moment
    assert answer.status == 409
    assert (await answer.json())["unavailable"] == [
        {"sku": "TEE-L", "requested": 6, "available": 5},
        {"sku": "TEE-M", "requested": 3, "available": 1},
    ]
    for sku, on_hand in (("TEE-S", 10), ("TEE-M", 1), ("TEE-L", 5)):
        assert await stock.counts(sku) == (on_hand, 0, on_hand)
        assert len(await stock.assert_ledger_adds_up(sku)) == 1
    assert (await stock.reservation("order-short"))["state"] == "refused"


async def test_a_line_found_short_at_the_ledger_gives_back_the_lines_already_held(
    start: Start, roles: Roles, db: Any
) -> None:
    # given two instances, the second having read the last M shirt as available
    first, second = Stock(await start(), roles), Stock(await start(), roles)
    await first.receive("TEE-L", 3)
    await first.receive("TEE-M", 1)
    assert await second.counts("TEE-M") == (1, 0, 1)

    # when the first instance sells that shirt, then the second takes an order for L and M
    assert (await first.reserve("order-first", {"TEE-M": 1})).status == 201
    answer = await second.reserve("order-late", {"TEE-L": 1, "TEE-M": 1})

    # then the late order is refused, and its L shirt was held and given back
    assert answer.status == 409
    assert (await answer.json())["unavailable"] == [
        {"sku": "TEE-M", "requested": 1, "available": 0}
    ]
    assert await second.counts("TEE-L") == (3, 0, 3)
    ledger = await second.assert_ledger_adds_up("TEE-L")
    assert [(m["type"], m["order_id"], m["reason"]) for m in ledger[1:]] == [
        ("reserved", "order-late", "order reserved"),
        ("released", "order-late", "another line was short"),
    ]
    assert (await second.reservation("order-late"))["state"] == "refused"
    assert await reservation_history(db, "order-late") == ["requested", "refused"]


async def test_concurrent_multi_line_orders_never_leave_a_partial_reservation(
    start: Start, roles: Roles
) -> None:
    # given 30 of S and 20 of M, on two instances
    first, second = Stock(await start(), roles), Stock(await start(), roles)
    await first.receive("TEE-S", 30)
    await first.receive("TEE-M", 20)

    # when 40 orders each ask for one S and one M at once
    answers = await _race([first, second], 40, {"TEE-S": 1, "TEE-M": 1})

    # then exactly 20 hold both lines, and the refused ones hold none
    assert collections.Counter(a.status for a in answers) == {201: 20, 409: 20}
    assert await first.counts("TEE-S") == (30, 20, 10)
    assert await first.counts("TEE-M") == (20, 20, 0)
    held = {(await a.json())["order_id"] for a in answers if a.status == 201}
    for sku in ("TEE-S", "TEE-M"):
        ledger = await first.assert_ledger_adds_up(sku)
        net: collections.Counter[str] = collections.Counter()
        for movement in ledger:
            net[movement["order_id"]] += movement["reserved_change"]
        assert {order for order, units in net.items() if units} == held


async def test_a_reservation_is_idempotent_per_order(stock: Stock) -> None:
    await stock.receive("TEE-S", 5)

    # when orders sends the same reservation twice, then another body for the same order
    first = await stock.reserve("order-twice", {"TEE-S": 2}, ttl_seconds=600)
    again = await stock.reserve("order-twice", {"TEE-S": 2}, ttl_seconds=600)
    other = await stock.reserve("order-twice", {"TEE-S": 3})

    # then the second answers the first's reservation, the third is refused, 2 units are held
    assert (first.status, again.status, other.status) == (201, 200, 422)
    body = await first.json()
    assert await again.json() == body
    assert first.headers["Location"] == "/internal/inventory/reservations/order-twice"
    assert body["state"] == "held"
    assert body["lines"] == [{"sku": "TEE-S", "quantity": 2, "tracked": True}]
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert timedelta(seconds=590) < expires_at - clock.now() <= timedelta(seconds=600)
    assert (await other.json())["type"].endswith("/reservation-mismatch")
    assert await stock.counts("TEE-S") == (5, 2, 3)


async def test_a_refused_order_may_try_again_once_stock_arrives(stock: Stock, db: Any) -> None:
    # given an order refused for lack of stock
    assert (await stock.reserve("order-later", {"TEE-L": 2})).status == 409

    # when the stock arrives and orders retries the same order
    await stock.receive("TEE-L", 2)
    retried = await stock.reserve("order-later", {"TEE-L": 2})

    # then the retry holds it
    assert retried.status == 201
    assert await stock.counts("TEE-L") == (2, 2, 0)
    assert await reservation_history(db, "order-later") == [
        "requested",
        "refused",
        "requested",
        "held",
    ]


async def test_release_and_commit_happen_once_and_never_both(stock: Stock) -> None:
    await stock.receive("TEE-S", 10)
    assert (await stock.reserve("order-paid", {"TEE-S": 3})).status == 201
    assert (await stock.reserve("order-gone", {"TEE-S": 4})).status == 201

    # when one order is committed twice and the other released twice, then each the other way
    commits = [await stock.conclude("order-paid", "commit") for _ in range(2)]
    releases = [await stock.conclude("order-gone", "release") for _ in range(2)]
    release_paid = await stock.conclude("order-paid", "release")
    commit_gone = await stock.conclude("order-gone", "commit")
    unknown = await stock.conclude("order-never", "commit")

    # then each happened once, the crossing ones are 409, and 3 units left the shelf
    assert [r.status for r in commits + releases] == [204] * 4
    assert (release_paid.status, commit_gone.status, unknown.status) == (409, 409, 404)
    assert (await release_paid.json())["type"].endswith("/reservation-closed")
    assert await stock.counts("TEE-S") == (7, 0, 7)
    ledger = await stock.assert_ledger_adds_up("TEE-S")
    assert [(m["type"], m["order_id"]) for m in ledger[3:]] == [
        ("committed", "order-paid"),
        ("released", "order-gone"),
    ]
    assert (await stock.reservation("order-paid"))["state"] == "committed"
    assert (await stock.reservation("order-gone"))["state"] == "released"


async def test_a_commit_and_a_release_racing_leave_every_line_one_way(
    start: Start, roles: Roles
) -> None:
    # given 20 two-line orders held, on two instances
    first, second = Stock(await start(), roles), Stock(await start(), roles)
    await first.receive("TEE-S", 20)
    await first.receive("TEE-M", 20)
    answers = await _race([first, second], 20, {"TEE-S": 1, "TEE-M": 1})
    assert {a.status for a in answers} == {201}

    # when each order is committed on one instance and released on the other at the same moment
    concluded = await asyncio.gather(
        *(
            stock.conclude(f"order-{n}", action)
            for n in range(20)
            for stock, action in ((first, "commit"), (second, "release"))
        )
    )

    # then per order one of them won, and both lines followed the winner
    assert {r.status for r in concluded} <= {204, 409}
    states = [(await first.reservation(f"order-{n}"))["state"] for n in range(20)]
    sold = states.count("committed")
    assert sold + states.count("released") == 20
    for sku in ("TEE-S", "TEE-M"):
        assert await first.counts(sku) == (20 - sold, 0, 20 - sold)
        ledger = await first.assert_ledger_adds_up(sku)
        endings = {m["order_id"]: m["type"] for m in ledger if m["type"] != "received"}
        assert endings == {
            f"order-{n}": "committed" if state == "committed" else "released"
            for n, state in enumerate(states)
        }


async def test_an_expired_reservation_is_released_exactly_once_by_two_sweepers(
    start: Start, roles: Roles, db: Any
) -> None:
    # given two instances, each with its sweeper, and a reservation that lives one second
    first, second = Stock(await start(), roles), Stock(await start(), roles)
    await first.receive("TEE-S", 5)
    answer = await first.reserve("order-slow", {"TEE-S": 2}, ttl_seconds=1)
    expires_at = datetime.fromisoformat((await answer.json())["expires_at"])
    assert await second.counts("TEE-S") == (5, 2, 3)

    # when it expires and both instances sweep at the same moment (beside their own loops)
    async def expired() -> bool:
        return clock.now() > expires_at

    await eventually(expired)
    sweepers = [inventory_of(first.client), inventory_of(second.client)]
    await asyncio.gather(*(sweeper.sweep() for sweeper in sweepers * 3))

    # then it is expired, and its units came back exactly once
    assert (await second.reservation("order-slow"))["state"] == "expired"
    assert await first.counts("TEE-S") == await second.counts("TEE-S") == (5, 0, 5)
    ledger = await first.assert_ledger_adds_up("TEE-S")
    released = [m for m in ledger if m["type"] == "released"]
    assert [(m["order_id"], m["quantity"], m["reason"]) for m in released] == [
        ("order-slow", 2, "not paid in time")
    ]
    assert await reservation_history(db, "order-slow") == ["requested", "held", "expired"]
    commit = await first.conclude("order-slow", "commit")
    assert commit.status == 409


async def test_the_background_sweeper_expires_reservations_on_its_own(stock: Stock) -> None:
    await stock.receive("TEE-L", 3)
    assert (await stock.reserve("order-forgotten", {"TEE-L": 3}, ttl_seconds=1)).status == 201

    # then, without anyone asking, it expires and its units come back (its lines follow its state)
    async def expired_and_given_back() -> bool:
        state = (await stock.reservation("order-forgotten"))["state"]
        return state == "expired" and await stock.counts("TEE-L") == (3, 0, 3)

    await eventually(expired_and_given_back)
    await stock.assert_ledger_adds_up("TEE-L")


async def test_a_reservation_the_sweeper_cannot_expire_shows_as_stuck_until_it_can(
    stock: Stock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a reservation past its time that every sweep fails on, and a minute of patience cut
    # to nothing
    await stock.receive("TEE-M", 2)
    assert (await stock.reserve("order-wedged", {"TEE-M": 1}, ttl_seconds=1)).status == 201
    inventory = inventory_of(stock.client)
    monkeypatch.setattr(sweeper, "STUCK_AFTER", timedelta(0))
    change = inventory.reservations.change

    async def failing_change(order_id: str, *args: Any) -> Any:
        if order_id == "order-wedged":
            raise PyMongoError("this reservation's stream cannot be written")
        return await change(order_id, *args)

    monkeypatch.setattr(inventory.reservations, "change", failing_change)

    async def stuck() -> float:
        metrics = await (await stock.client.get("/metrics")).text()
        [value] = re.findall(r"^stock_reservations_stuck\{[^}]*\} (\S+)$", metrics, re.M)
        return float(value)

    # then the background sweeps report it stuck
    await eventually(lambda: _equals(stuck(), 1.0))

    # when sweeps can write again, then it expires and nothing is stuck
    monkeypatch.setattr(inventory.reservations, "change", change)
    await eventually(lambda: _equals(stuck(), 0.0))
    assert (await stock.reservation("order-wedged"))["state"] == "expired"


async def _equals(value: Awaitable[float], expected: float) -> bool:
    return await value == expected


async def test_a_reservation_whose_maker_died_is_abandoned_and_may_be_made_again(
    stock: Stock, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a maker that dies after holding the lines, before concluding the reservation
    await stock.receive("TEE-S", 4)
    await stock.receive("TEE-M", 4)
    inventory = inventory_of(stock.client)
    reservations = inventory.reservations.events
    append = reservations.append

    async def dies_before_concluding(
        stream_id: str, expected_seq: int, type: str, *args: Any
    ) -> Event:
        if type == "reservation.held":
            raise PyMongoError("the process died here")
        return await append(stream_id, expected_seq, type, *args)

    monkeypatch.setattr(reservations, "append", dies_before_concluding)
    crashed = await stock.reserve("order-crash", {"TEE-S": 1, "TEE-M": 2})
    monkeypatch.undo()
    assert crashed.status == 500
    assert await stock.counts("TEE-M") == (4, 2, 2)
    in_progress = await stock.reserve("order-crash", {"TEE-S": 1, "TEE-M": 2})
    assert in_progress.status == 409
    assert in_progress.headers["Retry-After"] == "1"

    # when a sweeper runs after the maker's time is up
    await inventory.sweep(clock.now() + timedelta(minutes=2))

    # then its lines are released, and orders' retry makes the reservation anew
    assert await stock.counts("TEE-S") == (4, 0, 4)
    assert await stock.counts("TEE-M") == (4, 0, 4)
    retried = await stock.reserve("order-crash", {"TEE-S": 1, "TEE-M": 2})
    assert retried.status == 201
    assert await stock.counts("TEE-M") == (4, 2, 2)
    assert await reservation_history(db, "order-crash") == [
        "requested",
        "abandoned",
        "requested",
        "held",
    ]
    await stock.assert_ledger_adds_up("TEE-M")


async def _reserve_with_a_maker_that_dies_after_the_claim(
    stock: Stock, order_id: str, lines: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order's reservation is claimed (`requested`), then its maker dies before anything else."""
    inventory = inventory_of(stock.client)

    async def dies(*args: Any) -> None:
        raise PyMongoError("the process died here")

    monkeypatch.setattr(inventory.reservations, "_make", dies)
    crashed = await stock.reserve(order_id, lines)
    monkeypatch.undo()
    assert crashed.status == 500
    assert (await stock.reservation(order_id))["state"] == "requested"


async def test_a_reservation_whose_maker_died_right_after_its_claim_is_abandoned_by_the_sweeper(
    stock: Stock, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an order whose maker died right after claiming its reservation, and nobody retrying it
    await stock.receive("TEE-S", 4)
    await _reserve_with_a_maker_that_dies_after_the_claim(
        stock, "order-orphan", {"TEE-S": 1}, monkeypatch
    )

    # when a sweeper runs after the maker's time is up
    await inventory_of(stock.client).sweep(clock.now() + timedelta(minutes=2))

    # then the sweeper found and abandoned it, and orders' retry makes the reservation anew
    assert (await stock.reservation("order-orphan"))["state"] == "abandoned"
    retried = await stock.reserve("order-orphan", {"TEE-S": 1})
    assert retried.status == 201
    assert await stock.counts("TEE-S") == (4, 1, 3)
    assert await reservation_history(db, "order-orphan") == [
        "requested",
        "abandoned",
        "requested",
        "held",
    ]


async def test_a_reservation_still_being_made_asks_callers_to_wait_longer_the_longer_it_takes(
    stock: Stock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an order whose maker died right after claiming its reservation
    await stock.receive("TEE-S", 4)
    await _reserve_with_a_maker_that_dies_after_the_claim(
        stock, "order-stuck", {"TEE-S": 1}, monkeypatch
    )
    now = clock.now()

    # when orders retries it at once, then 4, 16 and 50 seconds later
    waits = []
    for later in (0, 4, 16, 50):
        monkeypatch.setattr(clock, "now", lambda later=later: now + timedelta(seconds=later))
        answer = await stock.reserve("order-stuck", {"TEE-S": 1})
        monkeypatch.undo()
        assert answer.status == 409
        assert (await answer.json())["type"].endswith("/reservation-in-progress")
        waits.append(int(answer.headers["Retry-After"]))

    # then each answer asks it to wait longer, but never past the moment it may be made anew
    assert waits[:3] == [1, 4, 16]
    assert 1 <= waits[3] <= 11


async def test_every_way_a_reservation_ends_takes_it_off_the_open_list(
    stock: Stock, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given reservations that were committed, released, expired, refused, left by a dead maker,
    # or whose claim never landed, and one still held
    await stock.receive("TEE-S", 10)
    inventory = inventory_of(stock.client)
    for order_id in ("order-paid", "order-gone", "order-open"):
        assert (await stock.reserve(order_id, {"TEE-S": 1})).status == 201
    assert (await stock.reserve("order-late", {"TEE-S": 1}, ttl_seconds=1)).status == 201
    assert (await stock.reserve("order-short", {"TEE-L": 1})).status == 409
    await _reserve_with_a_maker_that_dies_after_the_claim(
        stock, "order-dead", {"TEE-S": 1}, monkeypatch
    )
    append = inventory.reservations.events.append

    async def claim_fails(stream_id: str, expected_seq: int, type: str, *args: Any) -> Event:
        if type == REQUESTED_EVENT:
            raise PyMongoError("the answer to this claim was lost")
        return await append(stream_id, expected_seq, type, *args)

    monkeypatch.setattr(inventory.reservations.events, "append", claim_fails)
    assert (await stock.reserve("order-unclaimed", {"TEE-S": 1})).status == 500
    monkeypatch.undo()
    assert (await stock.conclude("order-paid", "commit")).status == 204
    assert (await stock.conclude("order-gone", "release")).status == 204
    listed = {doc["order_id"] async for doc in db.open_reservations.find()}
    assert listed == {"order-open", "order-late", "order-dead", "order-unclaimed"}

    # when the sweeper runs once every maker's time and the short expiry are up
    await inventory.sweep(clock.now() + timedelta(minutes=2))

    # then only the reservation still held is listed: the list never grows with finished ones
    assert [doc["order_id"] async for doc in db.open_reservations.find()] == ["order-open"]
    assert await stock.counts("TEE-S") == (9, 1, 8)


async def test_untracked_lines_are_reserved_without_touching_a_ledger(stock: Stock) -> None:
    await stock.receive("TEE-S", 1)

    answer = await stock.reserve("order-gift", {"GIFT-CARD": 50, "TEE-S": 1})

    assert answer.status == 201
    assert (await answer.json())["lines"] == [
        {"sku": "GIFT-CARD", "quantity": 50, "tracked": False},
        {"sku": "TEE-S", "quantity": 1, "tracked": True},
    ]
    assert await stock.movements("GIFT-CARD") == []
    assert (await stock.conclude("order-gift", "commit")).status == 204
    assert await stock.counts("TEE-S") == (0, 0, 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lines": [{"sku": "TEE-S", "quantity": 1}]}, "order_id"),
        ({"order_id": "a:b", "lines": [{"sku": "TEE-S", "quantity": 1}]}, "order_id"),
        ({"order_id": "o-1\n", "lines": [{"sku": "TEE-S", "quantity": 1}]}, "order_id"),
        ({"order_id": "o-1", "lines": []}, "lines"),
        ({"order_id": "o-1", "lines": [{"sku": "TEE-S", "quantity": 0}]}, "lines"),
        ({"order_id": "o-1", "lines": [{"sku": "TEE-S", "quantity": 1, "price": 5}]}, "lines"),
        (
            {"order_id": "o-1", "lines": [{"sku": "TEE-S", "quantity": 1}], "ttl_seconds": 0},
            "ttl_seconds",
        ),
        ({"order_id": "o-1", "lines": [{"sku": "TEE-S", "quantity": 1}], "paid": True}, "paid"),
    ],
)
async def test_invalid_reservations_get_422_naming_the_field(
    stock: Stock, roles: Roles, body: dict[str, Any], field: str
) -> None:
    response = await stock.client.post(
        "/internal/inventory/reservations", json=body, headers=roles.service
    )
    assert response.status == 422
    assert field in (await response.json())["errors"]


async def test_a_reservation_naming_an_unknown_sku_is_422_naming_the_line(stock: Stock) -> None:
    await stock.receive("TEE-S", 1)

    answer = await stock.reserve("order-typo", {"TEE-S": 1, "TEE-XXL": 1})

    assert answer.status == 422
    assert (await answer.json())["errors"] == {"lines": {"1": {"sku": ["no product has this SKU"]}}}
    assert await stock.counts("TEE-S") == (1, 0, 1)


async def test_orders_events_commit_and_release_reservations(
    start: Start, roles: Roles, nats_client: NatsClient
) -> None:
    # given orders' stream, the service consuming it, and two held orders
    js = nats_client.jetstream()
    await broker.ensure_stream(js, "orders")
    stock = Stock(await start(), roles)
    await stock.receive("TEE-S", 10)
    paid, cancelled, expired = new_order(), new_order(), new_order()
    for order_id in (paid, cancelled, expired):
        assert (await stock.reserve(order_id, {"TEE-S": 2})).status == 201

    # when orders publishes that one was paid, one cancelled and one expired (the payment twice)
    async def publish(event_type: str, order_id: str) -> None:
        event = Event(
            id=uuid.uuid4().hex,
            stream_id=f"order-{order_id}",
            seq=2,
            type=event_type,
            data={"order_id": order_id, "status": event_type.split(".")[1]},
            occurred_at=clock.now(),
        )
        await js.publish(
            broker.subject("orders", event_type),
            encode(event),
            stream=broker.stream_name("orders"),
            headers={"Nats-Msg-Id": event.id},
        )

    await publish("order.paid", paid)
    await publish("order.paid", paid)
    await publish("order.cancelled", cancelled)
    await publish("order.expired", expired)

    # then the paid order's stock left the shelf and the others' came back
    async def followed() -> bool:
        states = [(await stock.reservation(o))["state"] for o in (paid, cancelled, expired)]
        return states == ["committed", "released", "released"]

    await eventually(followed)
    assert await stock.counts("TEE-S") == (8, 0, 8)
    ledger = await stock.assert_ledger_adds_up("TEE-S")
    assert [(m["type"], m["reason"]) for m in ledger if m["order_id"] == paid] == [
        ("reserved", "order reserved"),
        ("committed", "order.paid"),
    ]
