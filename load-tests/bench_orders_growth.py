"""Does reading orders cost more when the orders database is large? Measure, load, measure again.

Signs up one customer and places a few real orders through the gateway, then measures, through
nginx: an order read by its customer, the customer's order list, and a staff list of one day's
orders. Then bulk-loads `--orders` orders (each a projection and its `order.placed` event, as the
service writes them) spread over the last `--days` days and `--customers` customers (the signed-up
customer among them, with their share), and measures again. Prints p50/p99 and the ratio.

Needs `./task up`. Usage: ./task bench:orders-growth [-- --orders 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

import aiohttp
from bench_carts import call, shopper
from bench_checkout import ADDRESS, GATEWAY, catalog, env

from orders.checkout import order_number
from orders.events import OrderEvent
from orders.model import Order, PaymentStatus, to_state
from orders.orders import stream
from shopkit import clock, mongo
from shopkit.events import EventStore, NewEvent

BATCH = 1000
SAMPLES = 200


def fake_order(user_id: str, created: Any) -> Order:
    order_id = uuid.uuid4().hex
    line = {
        "sku": "BULK-1",
        "title": "Bulk",
        "quantity": 1,
        "unit_price": 2500,
        "total": 2500,
        "tax": 399,
    }
    return Order(
        id=order_id,
        number=order_number(order_id),
        cart_id="c" + order_id,
        user_id=user_id,
        guest_key=None,
        email=f"{user_id}@example.com",
        currency="EUR",
        lines=(line,),
        shipping={
            "method": "standard",
            "name": "Standard",
            "amount": 495,
            "tax": 79,
            "address": ADDRESS,
        },
        subtotal=2500,
        shipping_total=495,
        tax_total=478,
        total=2995,
        tax_inclusive=True,
        note=None,
        payment_intent_id="pi_bulk",
        created_at=created,
        expires_at=created + timedelta(minutes=15),
        version=1,
        payment_status=PaymentStatus.AWAITING,
    )


async def load(count: int, days: int, customers: list[str]) -> None:
    client = mongo.client("mongodb://127.0.0.1:27017/")
    db = client["orders"]
    events = EventStore(db)
    now = clock.now()
    for start in range(0, count, BATCH):
        orders = [
            fake_order(
                random.choice(customers),
                now - timedelta(days=random.uniform(0, days)),
            )
            for _ in range(min(BATCH, count - start))
        ]
        documents = [
            {
                "_id": order.id,
                "version": 1,
                "user_id": order.user_id,
                "number": order.number,
                "day": order.created_at.date().isoformat(),
                "created_at": order.created_at,
                "status": order.status.value,
                "payment_status": order.payment_status.value,
                "fulfilment_status": order.fulfilment_status.value,
                "email": order.email,
                "state": to_state(order),
            }
            for order in orders
        ]
        await db["orders"].insert_many(documents, ordered=False)
        await events.append_batch(
            {
                stream(o.id): [NewEvent(OrderEvent.PLACED, o.placed_json(), id=f"{o.id}:placed")]
                for o in orders
            }
        )
    await client.close()


async def timed(
    session: aiohttp.ClientSession, paths: list[str], headers: dict[str, str]
) -> list[float]:
    spent = []
    for path in paths:
        began = time.monotonic()
        async with session.get(path, headers=headers) as response:
            assert response.status == 200, (path, response.status, await response.text())
            await response.read()
        spent.append((time.monotonic() - began) * 1000)
    return spent


async def measure(
    customer: str, staff: str, order_ids: list[str], days: list[str]
) -> dict[str, list[float]]:
    mine = {"Authorization": f"Bearer {customer}"}
    staff_auth = {"Authorization": f"Bearer {staff}"}
    async with aiohttp.ClientSession(GATEWAY) as session:
        return {
            "GET /api/v1/orders/{id} (customer)": await timed(
                session,
                [f"/api/v1/orders/{random.choice(order_ids)}" for _ in range(SAMPLES)],
                mine,
            ),
            "GET /api/v1/orders?limit=20 (customer)": await timed(
                session, ["/api/v1/orders?limit=20"] * (SAMPLES // 4), mine
            ),
            "GET /api/v1/orders?from=D&to=D (staff, one day)": await timed(
                session,
                [
                    f"/api/v1/orders?limit=20&from={d}&to={d}"
                    for d in random.choices(days, k=SAMPLES // 4)
                ],
                staff_auth,
            ),
        }


async def place_some(token: str, skus: list[str], count: int) -> list[str]:
    """Real orders of the customer, placed and left pending (each from a fresh cart line)."""
    auth = {"Authorization": f"Bearer {token}"}
    placed = []
    async with aiohttp.ClientSession(GATEWAY) as session:
        for index in range(count):
            async with session.delete("/api/v1/carts/current/lines", headers=auth):
                pass
            async with session.post(
                "/api/v1/carts/current/lines",
                json={"sku": skus[index % len(skus)], "quantity": 1},
                headers=auth,
            ) as response:
                assert response.status in (200, 201), await response.text()
            async with session.post(
                "/api/v1/orders",
                json={"shipping_method": "standard", "shipping_address": ADDRESS},
                headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
            ) as response:
                body = await response.json()
                assert response.status == 201, body
                placed.append(body["id"])
            async with session.post(f"/api/v1/orders/{body['id']}/cancel", json={}, headers=auth):
                pass
    return placed


def report(name: str, before: list[float], after: list[float]) -> str:
    def p(values: list[float], share: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    ratio = statistics.median(after) / statistics.median(before)
    return (
        f"{name:48} p50 {p(before, 0.5):6.1f} -> {p(after, 0.5):6.1f} ms ({ratio:4.2f}x)   "
        f"p99 {p(before, 0.99):6.1f} -> {p(after, 0.99):6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--customers", type=int, default=1000)
    args = parser.parse_args()
    settings = env()
    skus = catalog(4, settings)
    customer = shopper(0)
    staff = shopper_admin(settings)
    order_ids = asyncio.run(place_some(customer, skus, 5))
    subject = json.loads(base64.urlsafe_b64decode(customer.split(".")[1] + "=="))["sub"]
    today = clock.now().date()
    days = [(today - timedelta(days=n)).isoformat() for n in range(args.days)]

    before = asyncio.run(measure(customer, staff, order_ids, days))
    began = time.monotonic()
    others = [f"bulk-{n}" for n in range(args.customers - 1)]
    asyncio.run(load(args.orders, args.days, [subject, *others]))
    loaded = time.monotonic() - began
    after = asyncio.run(measure(customer, staff, order_ids, days))

    share = args.orders // args.customers
    print(
        f"orders read through nginx at {GATEWAY}: before and after loading {args.orders:,} orders "
        f"over {args.days} days and {args.customers} customers (about {share} each, "
        f"{args.orders // args.days:,} a day) in {loaded:.0f} s"
    )
    for name in before:
        print(report(name, before[name], after[name]))


def shopper_admin(settings: dict[str, str]) -> str:
    answer = call(
        "POST",
        "/api/v1/auth/login",
        {"email": settings["ADMIN_EMAIL"], "password": settings["ADMIN_PASSWORD"]},
    )
    return str(answer["access_token"])


if __name__ == "__main__":
    main()
