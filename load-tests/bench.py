"""`./task bench`: the shop's hot paths at fixed arrival rates (an open model, paced as wrk2 paces),
beside the bare nginx-to-aiohttp `/healthz` ceiling measured in the same run.

Each endpoint gets requests sent on a fixed schedule (`rate` a second for `--seconds`), whatever
the answers: a slow answer does not slow the sender, and each latency counts from when its request
was due, so queueing shows in the percentiles instead of hiding in a lower rate (coordinated
omission). The ceiling is wrk's closed-loop maximum on a service's `/healthz` through nginx.
Prints target and achieved rates, p50/p95/p99, failures, the achieved rate as a share of the
ceiling, and the generator's own CPU. Needs the local stack (the task starts it).
Usage: ./task bench [-- --seconds 10 --scale 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import load
import report
import wrk

CART = "/api/v1/carts/current"
CEILING_PATH = "/api/v1/products/healthz"
# In flight at most: past it the generator would be measuring its own queue.
IN_FLIGHT = 256


@dataclass(slots=True)
class Series:
    name: str
    target: float
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    seconds: float = 0.0
    cpu: float = 0.0

    @property
    def achieved(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


Send = Callable[[aiohttp.ClientSession, int], Awaitable[bool]]


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def paced(session: aiohttp.ClientSession, series: Series, send: Send, seconds: float) -> None:
    """`send` at series.target a second for `seconds`, each on its due time, none waiting for
    another; a request's latency runs from its due time to its answer."""
    interval = 1.0 / series.target
    start = time.monotonic() + 0.1
    gate = asyncio.Semaphore(IN_FLIGHT)
    cpu = cpu_now()

    async def one(number: int, due: float) -> None:
        async with gate:
            try:
                ok = await send(session, number)
            except (aiohttp.ClientError, TimeoutError):
                ok = False
        if ok:
            series.latencies.append((time.monotonic() - due) * 1000)
        else:
            series.failures += 1

    tasks = []
    count = int(series.target * seconds)
    for number in range(count):
        due = start + number * interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(number, due)))
    await asyncio.gather(*tasks)
    series.seconds = time.monotonic() - start
    series.cpu = cpu_now() - cpu


def getter(
    path_of: Callable[[int], str], headers: Callable[[int], dict[str, str]] | None = None
) -> Send:
    async def send(session: aiohttp.ClientSession, number: int) -> bool:
        async with session.get(path_of(number), headers=headers(number) if headers else None) as r:
            await r.read()
            return r.status == 200

    return send


def adder(skus: Sequence[str], tokens: Sequence[str]) -> Send:
    async def send(session: aiohttp.ClientSession, number: int) -> bool:
        # Each shopper in turn, each time the next SKU: lines grow evenly, far from their limit.
        shopper, turn = number % len(tokens), number // len(tokens)
        body = {"sku": skus[turn % len(skus)], "quantity": 1}
        auth = {"Authorization": f"Bearer {tokens[shopper]}"}
        async with session.post(f"{CART}/lines", json=body, headers=auth) as r:
            await r.read()
            return r.status in (200, 201)

    return send


def plan(
    data: dict[str, Any], tokens: Sequence[str], scale: float
) -> list[tuple[str, float, Send]]:
    """The endpoints, each with its fixed arrival rate (times `scale`)."""
    products, categories, words = data["products"], data["categories"], data["search_words"]

    def auth(number: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[number % len(tokens)]}"}

    return [
        (
            "GET /api/v1/products/{slug}",
            200 * scale,
            getter(lambda n: f"/api/v1/products/{products[n % len(products)]}"),
        ),
        (
            "GET /api/v1/products?category",
            100 * scale,
            getter(lambda n: f"/api/v1/products?category={categories[n % len(categories)]}"),
        ),
        (
            "GET /api/v1/search?q",
            50 * scale,
            getter(lambda n: f"/api/v1/search?q={words[n % len(words)]}"),
        ),
        ("GET /api/v1/carts/current", 100 * scale, getter(lambda n: CART, auth)),
        ("POST /api/v1/carts/current/lines", 50 * scale, adder(data["skus"], tokens)),
    ]


async def measure(
    target: load.Target, data: dict[str, Any], tokens: Sequence[str], seconds: float, scale: float
) -> list[Series]:
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    timeout = aiohttp.ClientTimeout(total=30)
    measured = []
    async with aiohttp.ClientSession(
        target.gateway, connector=connector, timeout=timeout
    ) as session:
        for name, rate, send in plan(data, tokens, scale):
            series = Series(name, rate)
            await paced(session, series, send, seconds)
            measured.append(series)
    return measured


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per endpoint")
    parser.add_argument("--scale", type=float, default=1.0, help="times every target rate")
    parser.add_argument("--shoppers", type=int, default=20)
    parser.add_argument("--gateway", default="http://127.0.0.1:8080")
    args = parser.parse_args(argv)
    random.seed(1)

    target = load.local_target(args.gateway)
    admin = load.admin_token(target)
    data: dict[str, Any] = {
        **load.browsing(target),
        "skus": load.product(target, admin, [load.SKU_STOCK] * 20),
    }
    shoppers = asyncio.run(load.accounts(target, args.shoppers, hash_cost=4))
    asyncio.run(load.sign_in(target, shoppers))
    tokens = [shopper["token"] for shopper in shoppers]
    # Warm: every instance has its connections and caches as it would a minute into trade.
    asyncio.run(measure(target, data, tokens, 2.0, 0.25))

    wrk.GATEWAY = target.gateway
    ceiling = wrk.run(CEILING_PATH, connections=32, duration=int(args.seconds))
    measured = asyncio.run(measure(target, data, tokens, args.seconds, args.scale))

    print(f"\nbench at {target.gateway}: {args.seconds:.0f} s per endpoint, one after another")
    print(
        f"ceiling: GET {CEILING_PATH} through nginx, wrk closed loop, 32 connections: "
        f"{ceiling.rps:.0f}/s, p50 {ceiling.p50_ms:.1f} ms, p99 {ceiling.p99_ms:.1f} ms"
    )
    print()
    print(
        f"{'endpoint':36} {'target/s':>9} {'achieved/s':>10} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'failed':>7} {'of ceiling':>10} {'gen CPU':>8}"
    )
    for series in measured:
        print(
            f"{series.name:36} {series.target:9.0f} {series.achieved:10.1f} "
            f"{report.percentile(series.latencies, 0.5):8.1f} {report.percentile(series.latencies, 0.95):8.1f} "
            f"{report.percentile(series.latencies, 0.99):8.1f} {series.failures:7d} "
            f"{series.achieved / ceiling.rps:10.1%} {series.cpu / series.seconds:8.0%}"
        )


if __name__ == "__main__":
    main()
