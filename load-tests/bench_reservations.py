"""Benchmark: 200 concurrent reservations of one unit of one SKU with 50 available, over HTTP.

Starts its own FerretDB (on PostgreSQL; SQLite with FERRETDB_BACKEND=sqlite) and NATS on free
loopback ports (or uses --mongo-url / --nats-url),
serves the products inventory routes on one or more instances sharing the database, and prints the
wall time of each round, the answers (50 x 201 and 150 x 409 expected, never a 5xx), per-request
p50 / p99, and the final counts. Usage: uv run python load-tests/bench_reservations.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import sys
import time
import uuid
from contextlib import AsyncExitStack, ExitStack
from typing import Any

import aiohttp
import peers
from aiohttp import web

from products.inventory import routes as inventory_routes
from products.inventory.context import inventory_context
from products.keys import SETTINGS
from products.settings import ProductsSettings
from shopkit import relay
from shopkit.app import build_app
from shopkit.settings import load
from shopkit.testing.peers import free_port
from shopkit.testing.tokens import TokenFactory

SKU = "BENCH-TEE"


class OneSku:
    """A SKU directory that knows only the benchmark's SKU, which tracks stock."""

    async def product_id_for_sku(self, sku: str) -> str | None:
        return sku if sku == SKU else None

    async def tracks_stock(self, sku: str) -> bool | None:
        return True if sku == SKU else None


def inventory_app(settings: ProductsSettings, tokens: TokenFactory) -> web.Application:
    """Inventory as the products service serves it; the SKU comes from a stub instead of the catalog."""
    app = build_app(settings, settings_key=SETTINGS, keys=tokens.keys())

    app.cleanup_ctx.append(inventory_context(lambda _app: OneSku()))
    app.cleanup_ctx.append(relay.relay_ctx())
    app.router.add_routes(inventory_routes.routes)
    return app


async def serve(app: web.Application, stack: AsyncExitStack) -> str:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return f"http://127.0.0.1:{port}"


async def one_round(
    session: aiohttp.ClientSession, urls: list[str], tokens: TokenFactory, orders: int, units: int
) -> dict[str, Any]:
    staff = tokens.header("bench-staff", "staff")
    service = tokens.header("service:orders", "service")
    sku = f"{SKU}"
    before = await (await session.get(f"{urls[0]}/api/v1/inventory/{sku}", headers=staff)).json()
    receipt = await session.post(
        f"{urls[0]}/api/v1/inventory/{sku}/receipts",
        json={"quantity": units - before["available"], "reason": "bench"},
        headers={**staff, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert receipt.status == 201, await receipt.text()
    prefix = uuid.uuid4().hex[:8]
    latencies: list[float] = []

    async def reserve(n: int) -> int:
        started = time.perf_counter()
        async with session.post(
            f"{urls[n % len(urls)]}/internal/inventory/reservations",
            json={"order_id": f"{prefix}-{n}", "lines": [{"sku": sku, "quantity": 1}]},
            headers=service,
        ) as response:
            await response.read()
            latencies.append(time.perf_counter() - started)
            return response.status

    started = time.perf_counter()
    statuses = await asyncio.gather(*(reserve(n) for n in range(orders)))
    elapsed = time.perf_counter() - started
    after = await (await session.get(f"{urls[-1]}/api/v1/inventory/{sku}", headers=staff)).json()
    # Sell what was held (a few at a time, as payments arrive), so the next round restocks.
    paying = asyncio.Semaphore(10)

    async def commit(n: int) -> None:
        async with (
            paying,
            session.post(
                f"{urls[0]}/internal/inventory/reservations/{prefix}-{n}/commit", headers=service
            ) as response,
        ):
            assert response.status in (204, 409), await response.text()

    await asyncio.gather(*(commit(n) for n, status in enumerate(statuses) if status == 201))
    latencies.sort()
    return {
        "seconds": elapsed,
        "statuses": dict(sorted(collections.Counter(statuses).items())),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "after": (after["on_hand"], after["reserved"], after["available"]),
    }


async def bench(args: argparse.Namespace) -> None:
    tokens = TokenFactory()
    with ExitStack() as started:
        mongo_url, nats_url = peers.database_and_broker(started, args.mongo_url, args.nats_url)
        env = {
            "SERVICE_NAME": "products",
            "MONGO_URL": mongo_url,
            "MONGO_DATABASE": "bench_" + uuid.uuid4().hex[:8],
            "NATS_URL": nats_url,
            "LOG_LEVEL": "ERROR",
            "JWT_ISSUER": tokens.issuer,
            "JWT_AUDIENCE": tokens.audience,
        }
        async with AsyncExitStack() as stack:
            settings = load(ProductsSettings, env)
            urls = [
                await serve(inventory_app(settings, tokens), stack) for _ in range(args.instances)
            ]
            connector = aiohttp.TCPConnector(limit=args.orders)
            session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
            print(
                f"{args.orders} concurrent reservations of 1 unit, {args.units} available, "
                f"{args.instances} instance(s), FerretDB at {mongo_url}"
            )
            print(f"{'round':>5} {'total s':>8} {'p50 ms':>8} {'p99 ms':>8}  answers  after")
            for number in range(1, args.rounds + 1):
                result = await one_round(session, urls, tokens, args.orders, args.units)
                print(
                    f"{number:>5} {result['seconds']:8.2f} {result['p50_ms']:8.1f}"
                    f" {result['p99_ms']:8.1f}  {result['statuses']}  "
                    f"on_hand/reserved/available={result['after']}"
                )
                if any(status >= 500 for status in result["statuses"]):
                    sys.exit("a reservation got a 5xx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--units", type=int, default=50)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mongo-url", default="")
    parser.add_argument("--nats-url", default="")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
