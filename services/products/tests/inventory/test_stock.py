"""Stock on the ledger: staff receive and adjust it, read levels and the audit trail; alerts; who may."""

from __future__ import annotations

import asyncio
import collections
import json
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from products_support import Roles
from test_inventory_support import (
    SKUS,
    SkuTable,
    Start,
    Stock,
    eventually,
    inventory_of,
    service_of,
)

from products.inventory.ledger import Ledger, StockLevel
from products.inventory.reservations import RESERVATIONS_COLLECTION
from products.inventory.service import Inventory
from products.inventory.stock import SNAPSHOT_EVERY, alert_stream, ledger_stream
from products.inventory.store import InventoryStore
from shopkit import idempotency
from shopkit.events import Event, EventStore
from shopkit.keys import DB


async def test_staff_receive_stock_and_read_its_level(stock: Stock) -> None:
    # when staff receive 12 and then 3 units
    first = await stock.receive("TEE-S", 12)
    await stock.receive("TEE-S", 3)

    # then the level counts 15 on hand, all available, and the receipt names who and why
    assert await stock.level("TEE-S") == {
        "sku": "TEE-S",
        "tracked": True,
        "on_hand": 15,
        "reserved": 0,
        "available": 15,
        "in_stock": True,
    }
    assert first["type"] == "received"
    assert (first["actor"], first["reason"], first["quantity"]) == ("staff-1", "delivery", 12)
    assert first["occurred_at"].endswith("Z")


async def test_a_receipt_needs_an_idempotency_key_and_a_retry_counts_once(
    stock: Stock, roles: Roles
) -> None:
    client = stock.client
    url = "/api/v1/inventory/TEE-S/receipts"
    body = {"quantity": 4, "reason": "delivery 88"}

    # when a receipt comes without a key, then twice with the same key, then with it for another body
    keyless = await client.post(url, json=body, headers=roles.staff)
    keyed = {**roles.staff, "Idempotency-Key": "delivery-88"}
    first = await client.post(url, json=body, headers=keyed)
    again = await client.post(url, json=body, headers=keyed)
    other = await client.post(url, json={**body, "quantity": 5}, headers=keyed)

    # then only the first keyed one counted; the retry replays its answer
    assert keyless.status == 400
    assert (first.status, again.status, other.status) == (201, 201, 422)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == await first.json()
    assert await stock.counts("TEE-S") == (4, 0, 4)
    assert len(await stock.movements("TEE-S")) == 1


async def test_an_adjustment_retried_after_its_answer_was_lost_answers_it_and_counts_once(
    stock: Stock, roles: Roles
) -> None:
    # given 5 on hand, and an adjustment of -5 that landed but whose idempotency record did not
    # (its instance died before completing it, and the record went stale)
    await stock.receive("TEE-S", 5)
    url = "/api/v1/inventory/TEE-S/adjustments"
    keyed = {**roles.staff, "Idempotency-Key": "shrinkage-7"}
    body = {"delta": -5, "reason": "shrinkage"}
    first = await stock.client.post(url, json=body, headers=keyed)
    assert first.status == 201, await first.text()
    await stock.client.server.app[DB][idempotency.COLLECTION].delete_many({})

    # when the client retries it, though taking 5 more would now overdraw
    again = await stock.client.post(url, json=body, headers=keyed)

    # then the retry answers the adjustment that landed, not 409, and it counted once
    assert again.status == 201, await again.text()
    assert await again.json() == await first.json()
    assert await stock.counts("TEE-S") == (0, 0, 0)


async def test_an_adjustment_may_not_take_on_hand_below_what_is_reserved(stock: Stock) -> None:
    # given 10 on hand of which an order holds 8
    await stock.receive("TEE-M", 10)
    assert (await stock.reserve("order-adjust", {"TEE-M": 8})).status == 201

    # when staff count 3 fewer, then 2 fewer
    too_many = await stock.adjust("TEE-M", -3, reason="shrinkage")
    fits = await stock.adjust("TEE-M", -2, reason="damaged in the store room")

    # then the first is refused and the second leaves nothing available
    assert too_many.status == 409
    problem = await too_many.json()
    assert problem["type"].endswith("/stock-below-reserved")
    assert (problem["on_hand"], problem["reserved"], problem["available"]) == (10, 8, 2)
    assert fits.status == 201
    movement = await fits.json()
    assert (movement["type"], movement["quantity"], movement["reason"]) == (
        "adjusted",
        -2,
        "damaged in the store room",
    )
    assert await stock.counts("TEE-M") == (8, 8, 0)
    assert (await stock.adjust("TEE-M", 5)).status == 201
    assert await stock.counts("TEE-M") == (13, 8, 5)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("receipts", {"quantity": 0, "reason": "x"}, "quantity"),
        ("receipts", {"quantity": "5", "reason": "x"}, "quantity"),
        ("receipts", {"quantity": 2.5, "reason": "x"}, "quantity"),
        ("receipts", {"quantity": True, "reason": "x"}, "quantity"),
        ("receipts", {"quantity": 5}, "reason"),
        ("receipts", {"quantity": 5, "reason": "x", "on_hand": 100}, "on_hand"),
        ("adjustments", {"delta": 0, "reason": "x"}, "delta"),
        ("adjustments", {"delta": 3, "reason": ""}, "reason"),
    ],
)
async def test_invalid_movements_get_422_naming_the_field(
    stock: Stock, roles: Roles, path: str, body: dict[str, Any], field: str
) -> None:
    response = await stock.client.post(
        f"/api/v1/inventory/TEE-S/{path}",
        json=body,
        headers={**roles.staff, "Idempotency-Key": f"invalid-{path}-{field}"},
    )

    assert response.status == 422
    assert response.content_type == "application/problem+json"
    assert field in (await response.json())["errors"]


async def test_a_body_that_is_not_json_is_400(stock: Stock, roles: Roles) -> None:
    response = await stock.client.post(
        "/api/v1/inventory/TEE-S/receipts",
        data=b"{not json",
        headers={**roles.staff, "Idempotency-Key": "bad-json", "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert response.content_type == "application/problem+json"


async def test_customers_and_staff_cannot_do_what_their_role_does_not_allow(
    stock: Stock, roles: Roles
) -> None:
    client = stock.client
    await stock.receive("TEE-S", 5)
    assert (await stock.reserve("order-roles", {"TEE-S": 1})).status == 201
    key = {"Idempotency-Key": "k-1"}
    reservation = {"order_id": "order-x", "lines": [{"sku": "TEE-S", "quantity": 1}]}

    # when a customer tries every write, and staff try the routes meant for services
    customer = [
        client.post(
            "/api/v1/inventory/TEE-S/receipts",
            json={"quantity": 5, "reason": "x"},
            headers={**roles.customer, **key},
        ),
        client.post(
            "/api/v1/inventory/TEE-S/adjustments",
            json={"delta": -5, "reason": "x"},
            headers={**roles.customer, **key},
        ),
        client.get("/api/v1/inventory/TEE-S/movements", headers=roles.customer),
        client.get("/api/v1/inventory/TEE-S", headers=roles.customer),
        client.post("/internal/inventory/reservations", json=reservation, headers=roles.customer),
        client.post("/internal/inventory/reservations/order-roles/release", headers=roles.customer),
        client.post("/internal/inventory/reservations/order-roles/commit", headers=roles.customer),
    ]
    staff = [
        client.post("/internal/inventory/reservations", json=reservation, headers=roles.staff),
        client.post("/internal/inventory/reservations/order-roles/commit", headers=roles.staff),
    ]
    anonymous = client.post("/api/v1/inventory/TEE-S/receipts", json={"quantity": 5, "reason": "x"})
    answers = await asyncio.gather(*customer, *staff, anonymous)

    # then each is refused as a problem, and nothing moved
    assert [r.status for r in answers] == [403] * 9 + [401]
    assert all(r.content_type == "application/problem+json" for r in answers)
    assert await stock.counts("TEE-S") == (5, 1, 4)
    assert (await stock.reservation("order-roles"))["state"] == "held"


async def test_unknown_skus_are_404_and_untracked_skus_are_always_available(
    stock: Stock, roles: Roles
) -> None:
    client = stock.client
    unknown = await client.get("/api/v1/inventory/NO-SUCH-SKU", headers=roles.staff)
    malformed = await client.get("/api/v1/inventory/bad:sku", headers=roles.staff)
    receipt = await client.post(
        "/api/v1/inventory/NO-SUCH-SKU/receipts",
        json={"quantity": 1, "reason": "x"},
        headers={**roles.staff, "Idempotency-Key": "unknown-sku"},
    )
    untracked_receipt = await client.post(
        "/api/v1/inventory/GIFT-CARD/receipts",
        json={"quantity": 1, "reason": "x"},
        headers={**roles.staff, "Idempotency-Key": "gift-card"},
    )

    assert (unknown.status, malformed.status, receipt.status) == (404, 404, 404)
    assert (await unknown.json())["type"].endswith("/sku-not-found")
    assert untracked_receipt.status == 409
    assert (await untracked_receipt.json())["type"].endswith("/stock-not-tracked")
    assert await stock.level("GIFT-CARD") == {
        "sku": "GIFT-CARD",
        "tracked": False,
        "on_hand": None,
        "reserved": None,
        "available": None,
        "in_stock": True,
    }


async def test_the_movements_are_an_audit_trail_paged_newest_first(
    stock: Stock, roles: Roles
) -> None:
    # given receipts, an adjustment, and an order that reserved and paid
    for quantity in (5, 6, 7):
        await stock.receive("TEE-L", quantity)
    assert (await stock.adjust("TEE-L", -1, reason="stolen")).status == 201
    assert (await stock.reserve("order-audit", {"TEE-L": 2})).status == 201
    assert (await stock.conclude("order-audit", "commit")).status == 204

    # when staff read it two entries at a time
    first = await stock.client.get(
        "/api/v1/inventory/TEE-L/movements", params={"limit": "2"}, headers=roles.staff
    )
    page = await first.json()
    ledger = await stock.movements("TEE-L", limit=2)

    # then the newest come first, and the whole trail says who did what, why, and what resulted
    assert [m["seq"] for m in page["items"]] == [6, 5]
    assert page["next_cursor"]
    assert [(m["type"], m["quantity"], m["actor"], m["reason"]) for m in ledger] == [
        ("received", 5, "staff-1", "delivery"),
        ("received", 6, "staff-1", "delivery"),
        ("received", 7, "staff-1", "delivery"),
        ("adjusted", -1, "staff-1", "stolen"),
        ("reserved", 2, "service:orders", "order reserved"),
        ("committed", 2, "service:orders", "paid"),
    ]
    assert [m["order_id"] for m in ledger[-2:]] == ["order-audit", "order-audit"]
    assert ledger[-1] | {"occurred_at": None} == {
        "seq": 6,
        "type": "committed",
        "quantity": 2,
        "on_hand_change": -2,
        "reserved_change": -2,
        "order_id": "order-audit",
        "actor": "service:orders",
        "reason": "paid",
        "occurred_at": None,
        "on_hand": 15,
        "reserved": 0,
        "available": 15,
    }
    await stock.assert_ledger_adds_up("TEE-L")
    junk = await stock.client.get(
        "/api/v1/inventory/TEE-L/movements", params={"cursor": "%%%"}, headers=roles.staff
    )
    too_many = await stock.client.get(
        "/api/v1/inventory/TEE-L/movements", params={"limit": "500"}, headers=roles.staff
    )
    assert (junk.status, too_many.status) == (422, 422)


async def test_low_and_out_of_stock_are_published_once_per_crossing(
    stock: Stock, nats_client: NatsClient
) -> None:
    # given a subscriber to the service's stock events (the threshold is 5)
    seen: list[tuple[str, dict[str, Any]]] = []

    async def record(message: Msg) -> None:
        seen.append((message.subject, json.loads(message.data)["data"]))

    service = service_of(stock.client)
    subscription = await nats_client.subscribe(f"shop.{service}.stock.>", cb=record)
    try:
        # when 7 arrive, 2 are reserved (5 left), 5 more (none left), and the 2 are released
        await stock.receive("TEE-S", 7)
        assert (await stock.reserve("order-low", {"TEE-S": 2})).status == 201
        assert (await stock.reserve("order-out", {"TEE-S": 5})).status == 201
        assert (await stock.conclude("order-low", "release")).status == 204

        # then, once the relay has published the 4 movements, exactly one low and one out went out
        async def all_published() -> bool:
            return len(seen) >= 6

        await eventually(all_published)
    finally:
        await subscription.unsubscribe()
    types = sorted(subject.removeprefix(f"shop.{service}.") for subject, _ in seen)
    assert types == [
        "stock.low",
        "stock.out",
        "stock.received",
        "stock.released",
        "stock.reserved",
        "stock.reserved",
    ]
    alerts = {subject.rsplit(".", 1)[1]: data for subject, data in seen if "reserv" not in subject}
    assert (alerts["low"]["sku"], alerts["low"]["available"], alerts["low"]["threshold"]) == (
        "TEE-S",
        5,
        5,
    )
    assert (alerts["out"]["available"], alerts["out"]["on_hand"]) == (0, 7)
    reserved = [data for subject, data in seen if subject.endswith("reserved")]
    assert {(d["order_id"], d["available"]) for d in reserved} == {
        ("order-low", 5),
        ("order-out", 0),
    }


async def test_levels_of_many_skus_come_in_one_call(stock: Stock) -> None:
    await stock.receive("TEE-S", 3)
    await stock.receive("TEE-M", 9)

    levels = await inventory_of(stock.client).levels(["TEE-S", "TEE-M", "TEE-S", "TEE-L"])

    assert {sku: (level.available, level.in_stock) for sku, level in levels.items()} == {
        "TEE-S": (3, True),
        "TEE-M": (9, True),
        "TEE-L": (0, False),
    }


async def test_a_second_instance_sees_what_the_first_recorded(start: Start, roles: Roles) -> None:
    # given two instances on one database, each having read the SKU
    first, second = Stock(await start(), roles), Stock(await start(), roles)
    await first.receive("TEE-M", 4)
    assert await second.counts("TEE-M") == (4, 0, 4)

    # when each records a movement the other has not seen
    await second.receive("TEE-M", 6)
    assert (await first.adjust("TEE-M", -10)).status == 201
    assert (await second.adjust("TEE-M", -1)).status == 409

    # then both read the same ledger, which adds up
    assert await first.counts("TEE-M") == await second.counts("TEE-M") == (0, 0, 0)
    await first.assert_ledger_adds_up("TEE-M")


async def test_a_new_instance_starts_from_the_snapshot_and_the_holds_in_it(
    start: Start, roles: Roles, db: Any
) -> None:
    # given a SKU with a history and an order holding part of it, snapshotted by its instance
    first = Stock(await start(), roles)
    for _ in range(4):
        await first.receive("TEE-S", 5)
    assert (await first.reserve("order-snap", {"TEE-S": 3})).status == 201
    assert await inventory_of(first.client).save_snapshots(every=1) == 1
    snapshot = await db.stock.find_one({"_id": "TEE-S"})
    assert (snapshot["seq"], snapshot["on_hand"], snapshot["reserved"]) == (5, 20, 3)

    # when more happens after the snapshot, and a new instance (an empty cache) takes over
    await first.receive("TEE-S", 1)
    second = Stock(await start(), roles)

    # then the new instance counts it all, and can release the hold it never saw being made
    assert await second.counts("TEE-S") == (21, 3, 18)
    assert (await second.conclude("order-snap", "release")).status == 204
    assert await second.counts("TEE-S") == await first.counts("TEE-S") == (21, 0, 21)
    await second.assert_ledger_adds_up("TEE-S")


class CountingEvents(EventStore):
    """An event store that counts the events it reads, per stream."""

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.reads: collections.Counter[str] = collections.Counter()

    async def get(self, stream_id: str, seq: int) -> Event | None:
        self.reads[stream_id] += 1
        return await super().get(stream_id, seq)


def _instance(
    db: Any, events: EventStore, store: InventoryStore | None = None, threshold: int = 0
) -> Inventory:
    """An instance without its background jobs: only its requests save snapshots."""
    return Inventory(
        events,
        EventStore(db, RESERVATIONS_COLLECTION),
        store or InventoryStore(db),
        SkuTable(SKUS),
        reservation_ttl=900,
        low_stock_threshold=threshold,
    )


async def test_a_cold_sku_with_a_long_ledger_reads_its_snapshot_and_a_bounded_tail(db: Any) -> None:
    # given an instance that recorded many movements on a SKU
    warm = _instance(db, EventStore(db))
    moves = 10 * SNAPSHOT_EVERY + 7
    for _ in range(moves):
        await warm.receive("TEE-S", 1, "staff-1", "delivery")

    # when a new instance (an empty cache) reserves on it
    events = CountingEvents(db)
    cold = _instance(db, events)
    reservation, _ = await cold.reserve("order-cold", [("TEE-S", 2)], "service:orders")

    # then it read the snapshot and at most SNAPSHOT_EVERY events, plus the free slot that ends them
    assert reservation.state == "held"
    assert events.reads[ledger_stream("TEE-S")] <= SNAPSHOT_EVERY + 1
    assert await cold.level("TEE-S") == StockLevel("TEE-S", moves, 2)


class AlertWatchingEvents(EventStore):
    """An event store that tells when a stock alert is recorded."""

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.alerted = asyncio.Event()

    async def append(self, stream_id: str, *args: Any, **kwargs: Any) -> Event:
        stored = await super().append(stream_id, *args, **kwargs)
        if stream_id == alert_stream("TEE-S"):
            self.alerted.set()
        return stored


class SnapshotsWaitingForAlerts(InventoryStore):
    """A snapshot write that cannot finish before the alert is recorded: a slow write."""

    def __init__(self, db: Any, events: AlertWatchingEvents) -> None:
        super().__init__(db)
        self.events = events

    async def save_snapshot(self, sku: str, ledger: Ledger, seq: int) -> None:
        async with asyncio.timeout(5):
            await self.events.alerted.wait()
        await super().save_snapshot(sku, ledger, seq)


async def test_a_slow_snapshot_write_does_not_hold_back_the_movements_stock_alert(db: Any) -> None:
    # given an instance whose snapshot writes are slow, one movement short of a snapshot
    events = AlertWatchingEvents(db)
    inventory = _instance(db, events, SnapshotsWaitingForAlerts(db, events), threshold=5)
    for _ in range(SNAPSHOT_EVERY - 1):
        await inventory.receive("TEE-S", 1, "staff-1", "delivery")

    # when the movement that is due a snapshot takes the SKU below the threshold
    moved = await inventory.adjust("TEE-S", -(SNAPSHOT_EVERY - 2), "staff-1", "recount")

    # then its alert is recorded, and so is the snapshot after it
    alerts = await events.load(alert_stream("TEE-S"))
    assert [(a.type, a.data["ledger_seq"]) for a in alerts] == [("stock.low", moved.seq)]
    assert (await db.stock.find_one({"_id": "TEE-S"}))["seq"] == moved.seq
