"""Does a cart read or write cost more when the carts database is large? Measure, load, measure again.

Bulk-loads `--carts` guest carts (each a record and a three-line stream of three events, written as
the service writes them) into the running stack's carts database, then reads and changes carts that
no instance has cached (each request a cart seen for the first time: a cold read folds its record
and stream from the database) through nginx, before and after, and prints p50/p99 and the ratio.

Needs `./task up` and `./task seed`. Usage: ./task bench:carts-growth [-- --carts 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import urllib.request
from datetime import timedelta
from typing import Any

import bench_carts
import wrk

from carts.model import Cart, CartEvent
from carts.owners import guest_cart_id, new_guest_token
from shopkit import clock, mongo, sweeps
from shopkit.events import EventStore, NewEvent

BATCH = 500


async def load(count: int, skus: list[str], prices: dict[str, dict[str, Any]]) -> list[str]:
    """`count` guest carts of three lines: their tokens."""
    client = mongo.client("mongodb://127.0.0.1:27017/")
    db = client["carts"]
    events = EventStore(db, "cart_events")
    tokens: list[str] = []
    purge_on = sweeps.purge_on(clock.now() + timedelta(days=30))
    for start in range(0, count, BATCH):
        batch = [new_guest_token() for _ in range(min(BATCH, count - start))]
        streams = {}
        for token in batch:
            lines = random.sample(skus, 3)
            streams[guest_cart_id(token)] = [
                NewEvent(CartEvent.LINE_ADDED, {"lines": [{**prices[sku], "quantity": 1}]})
                for sku in lines
            ]
        records = [
            {
                "_id": cart_id,
                "owner": None,
                "version": 0,
                "cart": Cart().to_json(),
                sweeps.FIELD: purge_on,
            }
            for cart_id in streams
        ]
        await db["carts"].insert_many(records)
        await events.append_batch(streams)
        tokens += batch
    await client.close()
    return tokens


def timed(method: str, path: str, token: str, body: Any = None) -> float:
    headers = {"X-Cart-Token": token, "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(wrk.GATEWAY + path, data, headers, method=method)  # noqa: S310
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
        response.read()
    return (time.perf_counter() - started) * 1000


def measure(tokens: list[str], skus: list[str]) -> dict[str, tuple[float, float]]:
    reads = [timed("GET", bench_carts.CART, token) for token in tokens[: len(tokens) // 2]]
    adds = [
        timed(
            "POST", f"{bench_carts.CART}/lines", token, {"sku": random.choice(skus), "quantity": 1}
        )
        for token in tokens[len(tokens) // 2 :]
    ]
    return {"cold cart read": _percentiles(reads), "add to a cold cart": _percentiles(adds)}


def _percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--carts", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=400)
    args = parser.parse_args()
    skus = bench_carts.in_stock_skus(10)
    found = bench_carts.call("GET", f"/api/v1/products/skus?skus={','.join(skus)}")["items"]
    prices = {i["sku"]: {"sku": i["sku"], "price": i["price"], "title": i["title"]} for i in found}

    small = asyncio.run(load(args.samples, skus, prices))
    before = measure(small, skus)
    started = time.monotonic()
    asyncio.run(load(args.carts, skus, prices))
    loaded_in = time.monotonic() - started
    fresh = asyncio.run(load(args.samples, skus, prices))
    after = measure(fresh, skus)

    print(f"loaded {args.carts:,} carts ({4 * args.carts:,} documents) in {loaded_in:.0f} s")
    print(
        f"{'operation (ms)':24} {'small p50':>10} {'p99':>8} {'large p50':>10} {'p99':>8} {'x p50':>6}"
    )
    for name, (p50, p99) in before.items():
        large50, large99 = after[name]
        print(
            f"{name:24} {p50:10.2f} {p99:8.2f} {large50:10.2f} {large99:8.2f} {large50 / p50:6.2f}"
        )


if __name__ == "__main__":
    main()
