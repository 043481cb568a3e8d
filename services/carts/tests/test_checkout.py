"""A cart in checkout: orders holds it by id, and its events take the paid lines out."""

from __future__ import annotations

import uuid
from typing import Any

from carts_support import Catalog, Shop, eventually, quantities
from nats.aio.client import Client as NatsClient

from shopkit import broker, clock
from shopkit.events import Event, encode


def _checkout(cart_id: str) -> str:
    return f"/internal/carts/{cart_id}/checkout"


async def _publish(nats_client: NatsClient, event_type: str, data: dict[str, Any]) -> None:
    js = nats_client.jetstream()
    await broker.ensure_stream(js, "orders")
    event = Event(
        id=uuid.uuid4().hex,
        stream_id=f"order-{data['order_id']}",
        seq=2,
        type=event_type,
        data=data,
        occurred_at=clock.now(),
    )
    await js.publish(
        broker.subject("orders", event_type),
        encode(event),
        stream=broker.stream_name("orders"),
        headers={"Nats-Msg-Id": event.id},
    )


async def test_orders_holds_a_cart_for_one_order_at_a_time(shop: Shop, catalog: Catalog) -> None:
    await catalog.add({"MUG-1": 1250})
    guest = await shop.guest("MUG-1", 2)
    cart_id = (await shop.cart(guest))["id"]
    orders = shop.user("service:orders", "service")

    held = await shop.call("POST", _checkout(cart_id), headers=orders, json={"order_id": "o-1"})
    again = await shop.call("POST", _checkout(cart_id), headers=orders, json={"order_id": "o-1"})
    other = await shop.call("POST", _checkout(cart_id), headers=orders, json={"order_id": "o-2"})
    by_customer = await shop.call(
        "POST", _checkout(cart_id), headers=shop.user("ann"), json={"order_id": "o-3"}
    )

    assert held.status == 201
    body = await held.json()
    assert body["checkout"]["order_id"] == "o-1"
    assert body["total"] == {"amount": 2500, "currency": "EUR"}
    assert again.status == 200
    assert other.status == 409
    assert (await other.json())["order_id"] == "o-1"
    assert by_customer.status == 403


async def test_a_cart_with_problems_or_no_lines_is_not_held(shop: Shop, catalog: Catalog) -> None:
    await catalog.add({"MUG-1": 1250}, stock=3)
    guest = await shop.guest("MUG-1", 3)
    cart_id = (await shop.cart(guest))["id"]
    orders = shop.user("service:orders", "service")
    await shop.guest("MUG-1", 1)  # not held: a cart holds no stock
    await catalog.products.post(
        "/api/v1/inventory/MUG-1/adjustments",
        json={"delta": -2, "reason": "damaged"},
        headers={**catalog.staff, "Idempotency-Key": "damage-2"},
    )

    short = await shop.call("POST", _checkout(cart_id), headers=orders, json={"order_id": "o-1"})
    await shop.call("DELETE", "/api/v1/carts/current/lines", headers=guest)
    empty = await shop.call("POST", _checkout(cart_id), headers=orders, json={"order_id": "o-1"})

    assert short.status == 409
    assert (await short.json())["problems"][0]["code"] == "insufficient_stock"
    assert empty.status == 409
    assert (await empty.json())["detail"] == "the cart is empty"


async def test_a_line_added_after_the_order_was_placed_survives_order_paid(
    shop: Shop, catalog: Catalog, nats_client: NatsClient
) -> None:
    await catalog.add({"MUG-1": 1250, "MUG-2": 990})
    ann = shop.user("ann")
    await shop.add("MUG-1", 2, ann)
    cart_id = (await shop.cart(ann))["id"]
    orders = shop.user("service:orders", "service")
    order_id = "o-" + uuid.uuid4().hex[:8]
    await shop.call("POST", _checkout(cart_id), headers=orders, json={"order_id": order_id})
    await shop.add("MUG-1", 1, ann)  # during checkout: one more of the ordered SKU
    await shop.add("MUG-2", 1, ann)  # and a new line

    paid = {"order_id": order_id, "cart_id": cart_id, "lines": [{"sku": "MUG-1", "quantity": 2}]}
    await _publish(nats_client, "order.paid", paid)
    await _publish(nats_client, "order.paid", paid)  # redelivered by a second publisher

    async def emptied() -> dict[str, Any] | None:
        cart = await shop.cart(ann)
        return cart if cart["checkout"] is None else None

    cart = await eventually(emptied)
    assert quantities(cart) == {"MUG-1": 1, "MUG-2": 1}


async def test_a_failed_payment_leaves_the_cart_as_it_was_and_free(
    shop: Shop, catalog: Catalog, nats_client: NatsClient
) -> None:
    await catalog.add({"MUG-1": 1250})
    ann = shop.user("ann")
    await shop.add("MUG-1", 2, ann)
    cart_id = (await shop.cart(ann))["id"]
    orders = shop.user("service:orders", "service")
    order_id = "o-" + uuid.uuid4().hex[:8]
    await shop.call("POST", _checkout(cart_id), headers=orders, json={"order_id": order_id})

    await _publish(nats_client, "order.cancelled", {"order_id": order_id, "cart_id": cart_id})

    async def freed() -> dict[str, Any] | None:
        cart = await shop.cart(ann)
        return cart if cart["checkout"] is None else None

    cart = await eventually(freed)
    assert quantities(cart) == {"MUG-1": 2}
    again = await shop.call("POST", _checkout(cart_id), headers=orders, json={"order_id": "o-next"})
    assert again.status == 201


async def test_orders_releases_its_hold(shop: Shop, catalog: Catalog) -> None:
    await catalog.add({"MUG-1": 1250})
    guest = await shop.guest("MUG-1")
    cart_id = (await shop.cart(guest))["id"]
    orders = shop.user("service:orders", "service")
    await shop.call("POST", _checkout(cart_id), headers=orders, json={"order_id": "o-1"})

    released = await shop.call("POST", f"{_checkout(cart_id)}/o-1/release", headers=orders)
    twice = await shop.call("POST", f"{_checkout(cart_id)}/o-1/release", headers=orders)

    assert released.status == twice.status == 204
    assert (await shop.cart(guest))["checkout"] is None


async def test_a_guest_cart_held_for_an_order_is_not_merged_away(
    shop: Shop, catalog: Catalog
) -> None:
    await catalog.add({"MUG-1": 1250})
    guest = await shop.guest("MUG-1", 2)
    cart_id = (await shop.cart(guest))["id"]
    orders = shop.user("service:orders", "service")
    await shop.call("POST", _checkout(cart_id), headers=orders, json={"order_id": "o-1"})

    merge = await shop.call(
        "POST", "/api/v1/carts/current/merge", headers={**shop.user("ann"), **guest}
    )

    assert merge.status == 409
    assert (await merge.json())["order_id"] == "o-1"
    assert quantities(await shop.cart(guest)) == {"MUG-1": 2}
