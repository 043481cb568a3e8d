"""`./task load:growth`: does an operation cost more as the shop's event collections grow?

On the local stack (`./task up`, with the demo catalog), grows each event collection that the
operations below write to (users' `events`, products' stock ledger, carts' `cart_events`, orders'
`events`) to 10,000 events and measures, then to 100,000 and measures again, through the gateway:
a sign-in, an add-to-cart, an order placement, a reservation on a SKU nobody has touched since the
stack started (through the internal listener, as orders reserves), and a stock level read. The
events are bulk-loaded as the services write them (accounts, ledger histories of other SKUs, guest
carts, orders); every measured request names a SKU, account or cart no earlier request touched.
Prints p50/p99 per size and the ratio of 100k to 10k (target: under 2x), and the generator's CPU.
Usage: ./task load:growth [-- --sizes 10000,100000 --requests 60]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import bench_carts_growth
import bench_orders_growth
import load
import report
import stack  # scripts/, on the path once load is imported
from bench_checkout import ADDRESS
from bench_growth import history
from pymongo import AsyncMongoClient

from products.inventory.stock import ledger_stream
from shopkit.events import EventStore

INTERNAL = "http://127.0.0.1:8090"
LEDGER_LENGTH = 50  # events per grown SKU history


async def timed(
    count: int, concurrency: int, call: Callable[[int], Awaitable[bool]], rate: float = 0.0
) -> list[float]:
    """`call(n)` for n in range(count), `concurrency` at a time (paced at `rate` a second if
    given): the latencies in ms of those that succeeded; a failure stops the run."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(n: int) -> None:
        if rate:
            await asyncio.sleep(n / rate)
        async with gate:
            began = time.monotonic()
            if not await call(n):
                raise RuntimeError(f"request {n} failed")
            latencies.append((time.monotonic() - began) * 1000)

    await asyncio.gather(*(one(n) for n in range(count)))
    return latencies


async def grow(target: load.Target, skus: Sequence[str], size: int) -> dict[str, int]:
    """Bulk-load events into each collection until it holds `size`; the counts after."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(target.mongo_url, timeoutMS=600_000)
    collections = {
        "users": client["users"]["events"],
        "products": client["products"]["events"],
        "carts": client["carts"]["cart_events"],
        "orders": client["orders"]["events"],
    }

    async def count(name: str) -> int:
        return int(await collections[name].estimated_document_count())

    try:
        if (users := await count("users")) < size:
            await load.accounts(target, size - users, hash_cost=4)
        if (ledger := await count("products")) < size:
            grown = [
                f"GROWTH-{uuid.uuid4().hex[:12]}".upper()
                for _ in range((size - ledger) // LEDGER_LENGTH + 1)
            ]
            events = EventStore(client["products"])
            for start in range(0, len(grown), 200):
                await events.append_batch(
                    {
                        ledger_stream(sku): [wanted for wanted, _ in history(sku, LEDGER_LENGTH)]
                        for sku in grown[start : start + 200]
                    }
                )
        if (carts := await count("carts")) < size:
            prices = {
                sku: {"sku": sku, "price": {"amount": 2500, "currency": "EUR"}, "title": sku}
                for sku in skus
            }
            await bench_carts_growth.load((size - carts) // 3 + 1, list(skus), prices)
        if (orders := await count("orders")) < size:
            customers = [uuid.uuid4().hex for _ in range(100)]
            await bench_orders_growth.load(size - orders, 30, customers)
        return {name: await count(name) for name in collections}
    finally:
        await client.close()


async def measure(
    target: load.Target, cold_skus: list[str], requests: int
) -> dict[str, list[float]]:
    settings = stack.stack_env()
    shoppers = await load.accounts(target, requests, hash_cost=4)
    results: dict[str, list[float]] = {}
    async with aiohttp.ClientSession(target.gateway) as http:

        async def post(
            url: str, body: Any, headers: dict[str, str], ok: tuple[int, ...]
        ) -> tuple[bool, Any]:
            async with http.post(url, json=body, headers=headers) as response:
                answer = await response.json(content_type=None)
                if response.status not in ok:
                    raise RuntimeError(f"POST {url}: {response.status} {answer}")
                return True, answer

        async def login(n: int) -> bool:
            ok, answer = await post("/api/v1/auth/login", shoppers[n], {}, (200,))
            shoppers[n]["token"] = answer.get("access_token", "") if ok else ""
            return ok

        results["POST /api/v1/auth/login"] = await timed(requests, 2, login, rate=load.LOGIN_RATE)

        def auth(n: int) -> dict[str, str]:
            return {"Authorization": f"Bearer {shoppers[n]['token']}"}

        async def add(n: int) -> bool:
            body = {"sku": cold_skus[n], "quantity": 1}
            return (await post("/api/v1/carts/current/lines", body, auth(n), (200, 201)))[0]

        results["POST /api/v1/carts/current/lines"] = await timed(requests, 4, add)

        async def place(n: int) -> bool:
            body = {"shipping_method": "standard", "shipping_address": ADDRESS}
            headers = {**auth(n), "Idempotency-Key": uuid.uuid4().hex}
            return (await post("/api/v1/orders", body, headers, (201,)))[0]

        results["POST /api/v1/orders"] = await timed(requests, 2, place)

        secret = dict(p.split(":", 1) for p in settings["SERVICE_CLIENTS"].split(","))["orders"]
        grant = {"grant_type": "client_credentials", "client_id": "orders", "client_secret": secret}
        _, token = await post("/api/v1/auth/token", grant, {}, (200,))
        service = {"Authorization": f"Bearer {token['access_token']}"}
        reserving = cold_skus[requests : 2 * requests]

        async def reserve(n: int) -> bool:
            body = {
                "order_id": f"growth-{uuid.uuid4().hex[:12]}",
                "lines": [{"sku": reserving[n], "quantity": 1}],
            }
            return (
                await post(f"{INTERNAL}/internal/inventory/reservations", body, service, (201,))
            )[0]

        results["POST reservation, untouched SKU"] = await timed(requests, 4, reserve)

        admin = load.admin_token(target)
        reading = cold_skus[2 * requests : 3 * requests]

        async def level(n: int) -> bool:
            async with http.get(
                f"/api/v1/inventory/{reading[n]}", headers={"Authorization": f"Bearer {admin}"}
            ) as response:
                await response.read()
                return response.status == 200

        results["GET /api/v1/inventory/{sku}, untouched"] = await timed(requests, 4, level)
    return results


async def demo_skus(target: load.Target, count: int) -> list[str]:
    """`count` SKUs of the demo catalog (in no particular order): none touched by the load tests,
    whose SKUs are their own."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(target.mongo_url, timeoutMS=60_000)
    try:
        claims = client["products"]["product_skus"].find({}, {"_id": 1}).limit(20_000)
        skus = [str(claim["_id"]) async for claim in claims]
    finally:
        await client.close()
    demo = [sku for sku in skus if not sku.startswith(("LOAD-", "FLASH-", "GROWTH-"))]
    random.shuffle(demo)
    # For sale and in stock (the demo catalog has drafts and sold-out SKUs too).
    found: list[str] = []
    for start in range(0, len(demo), 100):
        batch = ",".join(demo[start : start + 100])
        items = load.call(target, "GET", f"/api/v1/products/skus?skus={batch}")["items"]
        found += [item["sku"] for item in items if (item["available"] or 0) >= 5]
        if len(found) >= count:
            return found[:count]
    raise SystemExit(f"{count} untouched SKUs in stock wanted, the catalog has {len(found)}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="events per collection")
    parser.add_argument("--requests", type=int, default=60, help="measured per operation and size")
    args = parser.parse_args(argv)
    target = load.local_target()
    load.browsing(target)  # loads the demo catalog when the shop has none
    sizes = [int(size) for size in args.sizes.split(",")]
    figures: dict[int, dict[str, list[float]]] = {}
    counts: dict[int, dict[str, int]] = {}
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    untouched = asyncio.run(demo_skus(target, 3 * args.requests * len(sizes)))
    for number, size in enumerate(sizes):
        skus = untouched[3 * args.requests * number : 3 * args.requests * (number + 1)]
        started = time.monotonic()
        counts[size] = asyncio.run(grow(target, skus, size))
        print(f"grown to {counts[size]} events in {time.monotonic() - started:.0f} s", flush=True)
        figures[size] = asyncio.run(measure(target, skus, args.requests))
    used = resource.getrusage(resource.RUSAGE_SELF)
    first, last = sizes[0], sizes[-1]
    print()
    print(
        f"{'operation':40}"
        + "".join(f" {f'p50 @{s:,}':>13} {f'p99 @{s:,}':>13}" for s in sizes)
        + f" {'p50 ratio':>10}"
    )
    for name in figures[first]:
        row = f"{name:40}"
        for size in sizes:
            samples = figures[size][name]
            p50, p99 = report.percentile(samples, 0.5), report.percentile(samples, 0.99)
            row += f" {p50:13.1f} {p99:13.1f}"
        ratio = report.percentile(figures[last][name], 0.5) / report.percentile(
            figures[first][name], 0.5
        )
        print(f"{row} {ratio:10.2f}")
    print(f"\nevents per collection at each size: {counts}")
    spent = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    print(f"generator CPU (loading included): {spent:.1f} s")


if __name__ == "__main__":
    main()
