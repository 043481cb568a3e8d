"""Benchmark checkout end to end through nginx: order placed, webhook delivered, order paid.

Creates a product with `--skus` SKUs of ample stock (as the admin of .env.example), signs up
`--buyers` accounts (bcrypt: about half a second each), then for `--duration` seconds each buyer
loops: add a unit to their cart, `POST /api/v1/orders`, deliver Stripe's signed
`payment_intent.succeeded` webhook (signed with STRIPE_WEBHOOK_SECRET, as Stripe signs it), and
wait for the order's `order.paid` on the bus (listened to, not polled); the next order of a buyer
is retried while the last one is still leaving their cart (409). Beside them, a few clients
read orders' /healthz through nginx all along (the ceiling of the same path at the same moment).

Prints completed checkouts per second, the latency of `POST /api/v1/orders` and of a whole
checkout, and /healthz's, from one run. Needs `./task up`.
Usage: ./task bench:checkout [-- --buyers 64 --duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import nats
from bench_carts import call, shopper

from shopkit import broker
from shopkit.settings import read_env_file
from shopkit.testing.stripe import order_intent_event, sign_webhook

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = "http://127.0.0.1:8080"
ADDRESS = {
    "recipient": "Bench Buyer",
    "line1": "Hauptstrasse 1",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}
RETRY = 0.05


def env() -> dict[str, str]:
    values = read_env_file(ROOT / ".env.example")
    if (ROOT / ".env").exists():
        values.update(read_env_file(ROOT / ".env"))
    return values


def catalog(skus: int, settings: dict[str, str]) -> list[str]:
    """A published product with `skus` SKUs at 25.00 EUR, each with a million units."""
    admin = call(
        "POST",
        "/api/v1/auth/login",
        {"email": settings["ADMIN_EMAIL"], "password": settings["ADMIN_PASSWORD"]},
    )["access_token"]
    tag = uuid.uuid4().hex[:8]
    names = [f"BENCH-{tag}-{index}".upper() for index in range(skus)]
    call(
        "POST",
        "/api/v1/products",
        {
            "slug": f"bench-{tag}",
            "name": f"Bench {tag}",
            "description": "Bought by the checkout benchmark.",
            "status": "published",
            "variants": [
                {"sku": sku, "price": {"amount": 2500, "currency": "EUR"}, "attributes": {"n": sku}}
                for sku in names
            ],
        },
        admin,
    )
    for sku in names:
        idempotent_call(
            "POST",
            f"/api/v1/inventory/{sku}/receipts",
            {"quantity": 1_000_000, "reason": "bench"},
            admin,
        )
    return names


def idempotent_call(method: str, path: str, body: Any, token: str) -> Any:
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {token}",
        "Idempotency-Key": uuid.uuid4().hex,
    }
    request = urllib.request.Request(  # noqa: S310 (loopback)
        GATEWAY + path, json.dumps(body).encode(), headers, method=method
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read() or b"null")


class Run:
    def __init__(self, deadline: float, secret: str) -> None:
        self.deadline = deadline
        self.secret = secret
        self.place_ms: list[float] = []
        self.checkout_ms: list[float] = []
        self.health_ms: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.completed = 0
        self.paid: dict[str, asyncio.Future[None]] = {}


async def buyer(
    session: aiohttp.ClientSession, run: Run, token: str, skus: list[str], n: int
) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    sku = skus[n % len(skus)]
    while time.monotonic() < run.deadline:
        began = time.monotonic()
        async with session.post(
            "/api/v1/carts/current/lines", json={"sku": sku, "quantity": 1}, headers=auth
        ) as response:
            run.statuses[f"add {response.status}"] += 1
            if response.status >= 300:
                await asyncio.sleep(0.1)
                continue
        order = await place(session, run, auth)
        if order is None:
            continue
        paid = run.paid.setdefault(order["id"], asyncio.get_running_loop().create_future())
        await deliver_webhook(session, run, order)
        try:
            await asyncio.wait_for(paid, timeout=30)
        except TimeoutError:
            run.statuses["never paid"] += 1
            continue
        run.checkout_ms.append((time.monotonic() - began) * 1000)
        if time.monotonic() <= run.deadline:
            run.completed += 1


async def place(
    session: aiohttp.ClientSession, run: Run, auth: dict[str, str]
) -> dict[str, Any] | None:
    """POST /api/v1/orders; while the previous order is still leaving the cart (carts has not
    taken its lines out yet: 409 checkout-in-progress), the same request again shortly."""
    key = uuid.uuid4().hex
    for _ in range(100):
        placing = time.monotonic()
        async with session.post(
            "/api/v1/orders",
            json={"shipping_method": "standard", "shipping_address": ADDRESS},
            headers={**auth, "Idempotency-Key": key},
        ) as response:
            run.place_ms.append((time.monotonic() - placing) * 1000)
            run.statuses[f"place {response.status}"] += 1
            order: dict[str, Any] = await response.json()
            if response.status == 201:
                return order
            if response.status != 409:
                return None
        await asyncio.sleep(RETRY)
    return None


async def deliver_webhook(session: aiohttp.ClientSession, run: Run, order: dict[str, Any]) -> None:
    """Stripe's `payment_intent.succeeded` for the order, signed as Stripe signs it."""
    body = order_intent_event("payment_intent.succeeded", order)
    async with session.post(
        "/api/v1/payments/webhooks/stripe",
        data=body,
        headers={
            "Stripe-Signature": sign_webhook(body, run.secret),
            "Content-Type": "application/json",
        },
    ) as response:
        run.statuses[f"webhook {response.status}"] += 1


async def follow_paid(nats_url: str, run: Run) -> Any:
    """Listen for `order.paid` on the bus: the moment a checkout is complete, with no polling
    (which would load the platform with the benchmark's own reads)."""
    connection = await nats.connect(nats_url)

    async def paid(message: Any) -> None:
        order_id = json.loads(message.data)["data"]["order_id"]
        future = run.paid.setdefault(order_id, asyncio.get_running_loop().create_future())
        if not future.done():
            future.set_result(None)

    await connection.subscribe(broker.subject("orders", "order.paid"), cb=paid)
    return connection


async def health(session: aiohttp.ClientSession, run: Run) -> None:
    while time.monotonic() < run.deadline:
        began = time.monotonic()
        async with session.get("/api/v1/orders/healthz") as response:
            await response.read()
        run.health_ms.append((time.monotonic() - began) * 1000)


def cpu_seconds() -> dict[str, float]:
    """CPU seconds each kind of process has used so far (Linux /proc), by program name."""
    used: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        program = (
            Path(argv[0].decode(errors="replace")).name
            or stat[stat.index("(") + 1 : stat.rindex(")")]
        )
        if program.startswith("python") and len(argv) > 1:
            program = Path(argv[1].decode(errors="replace")).name
        if program.startswith("postgres"):
            program = "postgres"
        used[program] = used.get(program, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return used


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(
    tokens: list[str], skus: list[str], duration: int, secret: str, probes: int, nats_url: str
) -> Run:
    run = Run(time.monotonic() + duration, secret)
    listening = await follow_paid(nats_url, run)
    connector = aiohttp.TCPConnector(limit=len(tokens) + probes + 4)
    async with aiohttp.ClientSession(GATEWAY, connector=connector) as session:
        await asyncio.gather(
            *(buyer(session, run, token, skus, n) for n, token in enumerate(tokens)),
            *(health(session, run) for _ in range(probes)),
        )
    await listening.close()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buyers", type=int, default=64)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--skus", type=int, default=20)
    parser.add_argument("--health-clients", type=int, default=2)
    args = parser.parse_args()
    settings = env()

    skus = catalog(args.skus, settings)
    with ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(shopper, range(args.buyers)))
    before = cpu_seconds()
    run = asyncio.run(
        measure(
            tokens,
            skus,
            args.duration,
            settings["STRIPE_WEBHOOK_SECRET"],
            args.health_clients,
            settings["NATS_URL"],
        )
    )
    after = cpu_seconds()

    print(
        f"{args.buyers} buyers for {args.duration}s through nginx at {GATEWAY}, "
        f"{args.health_clients} clients on /healthz beside them"
    )
    print(
        f"checkouts completed end to end: {run.completed} ({run.completed / args.duration:.1f}/s)"
    )
    rows = {
        "POST /api/v1/orders": run.place_ms,
        "whole checkout (add, place, webhook, paid)": run.checkout_ms,
        "GET /api/v1/orders/healthz": run.health_ms,
    }
    print(f"{'':44} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name, values in rows.items():
        print(
            f"{name:44} {len(values):7d} {percentile(values, 0.5):8.1f} "
            f"{percentile(values, 0.95):8.1f} {percentile(values, 0.99):8.1f}"
        )
    print("answers:", dict(sorted(run.statuses.items())))
    if run.place_ms:
        print(f"mean POST /api/v1/orders: {statistics.fmean(run.place_ms):.1f} ms")
    spent = {name: after[name] - before.get(name, 0.0) for name in after}
    total = sum(value for value in spent.values() if value > 0)
    print(f"CPU seconds during the run, by program ({total:.1f} s in all):")
    for name, value in sorted(spent.items(), key=lambda item: -item[1])[:12]:
        if value >= 0.1:
            per = f", {1000 * value / run.completed:.0f} ms per checkout" if run.completed else ""
            print(f"  {name:24} {value:6.1f} s  {100 * value / total:4.1f}%{per}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
