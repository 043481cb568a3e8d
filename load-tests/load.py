"""`./task load -- <scenario> [users] [duration]`: one Locust scenario against the shop, then its
invariants, summary table and plots.

Scenarios (locustfile.py): steady, flash-sale (--units, default 300), double-submit, webhook-storm;
--fault NAME injects one of faults.py's faults. Everything goes to .run/load/<scenario>-<time>/.
Exit status 1 when an invariant fails, or, with --strict, when any request failed or any error
was raised (the gate ./task test runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import faults
import invariants
import report
import seeding
from invariants import Verdict
from pymongo import AsyncMongoClient

from users.passwords import Hasher

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "scripts"))
import stack  # noqa: E402 (scripts/ is no package)

GATEWAY = f"http://127.0.0.1:{stack.GATEWAY_PORT}"
PASSWORD = "load test password"
# nginx lets one address sign in 10 times a second (burst 20): those who sign in before a run
# are signed in just under it.
LOGIN_RATE = 9.0
SKU_STOCK = 1_000_000
# After the users stop: time for the last webhooks' effects (orders paid, stock committed) to land.
SETTLE_TIMEOUT = 60.0
CATALOG_MINIMUM = 100
# A fault's cause lifted to the platform whole again (every instance ready, no request failing).
RECOVERY_LIMIT = 30.0
# A fault run lasts past the fault's end by this much: the recovery is measured under load.
AFTER_FAULT = 40.0
SERVICES = ("users", "products", "orders", "payments")


@dataclass(frozen=True, slots=True)
class Scenario:
    classes: tuple[str, ...]
    users: int
    duration: int
    spawn_rate: float
    # Buyers signed in before the run (a flash crowd from one address would meet nginx's login
    # limit); the others sign in as part of what they do.
    signed_in: bool = False


SCENARIOS = {
    "steady": Scenario(("Shopper",), users=40, duration=60, spawn_rate=5),
    "flash-sale": Scenario(
        ("FlashBuyer",), users=500, duration=120, spawn_rate=100, signed_in=True
    ),
    "double-submit": Scenario(("DoubleSubmitter",), users=20, duration=45, spawn_rate=5),
    "webhook-storm": Scenario(("WebhookStorm",), users=20, duration=45, spawn_rate=5),
}


@dataclass(frozen=True, slots=True)
class Target:
    """The shop under load: its gateway, database server, Stripe recording proxy and secrets."""

    gateway: str
    mongo_url: str
    stripe_url: str
    webhook_secret: str
    admin_email: str
    admin_password: str
    password_pepper: str
    databases: Mapping[str, str]  # each service's database (the local stack's: its name)


def local_target(gateway: str = GATEWAY, **given: str | None) -> Target:
    """The local stack's (.env.example and .env), with what is `given` instead."""
    settings = stack.stack_env()
    named = dict(pair.split("=", 1) for pair in (given.get("databases") or "").split(",") if pair)
    return Target(
        gateway=gateway.rstrip("/"),
        mongo_url=given.get("mongo_url") or settings["MONGO_URL"],
        stripe_url=(given.get("stripe_url") or settings["STRIPE_API_URL"]).rstrip("/"),
        webhook_secret=given.get("webhook_secret") or settings["STRIPE_WEBHOOK_SECRET"],
        admin_email=settings["ADMIN_EMAIL"],
        admin_password=settings["ADMIN_PASSWORD"],
        password_pepper=given.get("password_pepper") or settings["PASSWORD_PEPPER"],
        databases={name: named.get(name, name) for name in SERVICES},
    )


@dataclass(frozen=True, slots=True)
class Prepared:
    data: dict[str, Any]  # what the shoppers are given (SHOP_LOAD_DATA)
    skus: tuple[str, ...]  # every SKU the run sells
    flash_sku: str | None
    units: int


def call(target: Target, method: str, path: str, body: Any = None, token: str = "") -> Any:
    headers = {"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 (loopback)
        target.gateway + path, data, headers, method=method
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        raw = response.read()
        return json.loads(raw) if raw else None


def admin_token(target: Target) -> str:
    """The seeded admin, signed in."""
    credentials = {"email": target.admin_email, "password": target.admin_password}
    return str(call(target, "POST", "/api/v1/auth/login", credentials)["access_token"])


def product(target: Target, admin: str, units: Sequence[int]) -> list[str]:
    """A published product with one SKU per entry of `units`, each with that much stock."""
    tag = uuid.uuid4().hex[:8]
    skus = [f"LOAD-{tag}-{index}".upper() for index in range(len(units))]
    variants = [
        {"sku": sku, "price": {"amount": 2500, "currency": "EUR"}, "attributes": {"n": sku}}
        for sku in skus
    ]
    body = {
        "slug": f"load-{tag}",
        "name": f"Load test {tag}",
        "description": "Bought by the load tests.",
        "status": "published",
        "variants": variants,
    }
    call(target, "POST", "/api/v1/products", body, admin)
    for sku, count in zip(skus, units, strict=True):
        receipt = {"quantity": count, "reason": "load test"}
        call(target, "POST", f"/api/v1/inventory/{sku}/receipts", receipt, admin)
    return skus


def browsing(target: Target) -> dict[str, list[str]]:
    """What shoppers browse: the catalog's categories, products and words from their names (the
    local stack's demo catalog is loaded first when the shop has hardly any)."""
    products = call(target, "GET", "/api/v1/products?limit=100")["items"]
    if len(products) < CATALOG_MINIMUM and target.gateway == GATEWAY:
        print("the catalog is small: loading the demo catalog (./task seed)...", flush=True)
        subprocess.run([sys.executable, str(ROOT / "scripts" / "seed.py")], check=True)
        products = call(target, "GET", "/api/v1/products?limit=100")["items"]
    deadline = time.monotonic() + 30
    while not products and time.monotonic() < deadline:
        # A fresh shop lists the products made for the run once its search index has them.
        time.sleep(0.5)
        products = call(target, "GET", "/api/v1/products?limit=100")["items"]
    if not products:
        raise SystemExit("the shop lists no product to browse")
    categories = call(target, "GET", "/api/v1/categories")["items"]
    words = sorted({word.lower() for p in products for word in p["name"].split() if len(word) > 3})
    return {
        "products": [p["slug"] for p in products],
        "categories": [c["slug"] for c in categories] or [""],
        "search_words": words[:200],
    }


async def accounts(target: Target, count: int, hash_cost: int) -> list[dict[str, str]]:
    """`count` customers loaded straight into the users database (one bcrypt hash for all)."""
    tag = uuid.uuid4().hex[:8]
    emails = [f"load-{tag}-{number}@example.com" for number in range(count)]
    password_hash = await Hasher(target.password_pepper, hash_cost).hash(PASSWORD)
    client: AsyncMongoClient[Any] = AsyncMongoClient(target.mongo_url, timeoutMS=60_000)
    try:
        await seeding.accounts(client[target.databases["users"]], emails, password_hash)
    finally:
        await client.close()
    return [{"email": email, "password": PASSWORD} for email in emails]


async def sign_in(target: Target, shoppers: list[dict[str, str]]) -> None:
    """Each account's access token, in `token`, just under the gateway's login rate."""
    async with aiohttp.ClientSession(target.gateway) as session:

        async def one(account: dict[str, str], delay: float) -> None:
            await asyncio.sleep(delay)
            for _ in range(10):
                async with session.post("/api/v1/auth/login", json=account) as response:
                    if response.status == 429:
                        await asyncio.sleep(1.0)
                        continue
                    response.raise_for_status()
                    account["token"] = (await response.json())["access_token"]
                    return
            raise RuntimeError(f"could not sign {account['email']} in")

        await asyncio.gather(*(one(a, n / LOGIN_RATE) for n, a in enumerate(shoppers)))


def prepare(target: Target, scenario: Scenario, users: int, units: int, hash_cost: int) -> Prepared:
    admin = admin_token(target)
    skus = product(target, admin, [SKU_STOCK] * 20)
    flash_sku = product(target, admin, [units])[0] if "FlashBuyer" in scenario.classes else None
    shoppers = asyncio.run(accounts(target, users, hash_cost))
    if scenario.signed_in:
        started = time.monotonic()
        asyncio.run(sign_in(target, shoppers))
        print(f"signed {users} buyers in in {time.monotonic() - started:.0f} s", flush=True)
    data = {
        **browsing(target),
        "webhook_secret": target.webhook_secret,
        "staff_token": admin,
        "skus": skus,
        "flash_sku": flash_sku,
        "accounts": shoppers,
    }
    sold = (*skus, flash_sku) if flash_sku else tuple(skus)
    return Prepared(data, sold, flash_sku, units if flash_sku else 0)


def recorded(target: Target, start: int) -> tuple[int, list[dict[str, Any]]]:
    """How many requests the Stripe recording proxy has seen, and those from the `start`-th."""
    url = f"{target.stripe_url}/_proxy/requests?from={start}"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (loopback)
        answer = json.loads(response.read())
    return int(answer["total"]), list(answer["requests"])


def run_locust(
    scenario: Scenario, users: int, duration: float, data_file: Path, out: Path, gateway: str
) -> tuple[float, float]:
    """Locust, headless, for `duration` seconds at most: its CPU seconds and the wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    command = [
        *(sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless"),
        *("--host", gateway, "--users", str(users)),
        *("--spawn-rate", str(min(scenario.spawn_rate, users)), "--run-time", f"{duration:.0f}s"),
        *("--stop-timeout", "10", "--csv", str(out / "locust"), "--csv-full-history"),
        *("--html", str(out / "report.html"), "--only-summary", "--loglevel", "WARNING"),
        *scenario.classes,
    ]
    env = {
        **os.environ,
        "SHOP_LOAD_DATA": str(data_file),
        "SHOP_LOAD_FIGURES": str(out / "figures.json"),
    }
    with (out / "locust.log").open("w") as log:
        # Locust's own exit status is 1 whenever a request failed: the summary reports those.
        subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, time.monotonic() - started


async def settle(target: Target, skus: Sequence[str]) -> None:
    """Wait until no order of the run is still between paid and committed (a webhook's effects
    land on the bus a moment after its answer), or SETTLE_TIMEOUT."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    client: AsyncMongoClient[Any] = AsyncMongoClient(target.mongo_url, timeoutMS=30_000)
    try:
        while time.monotonic() < deadline:
            if await invariants.unsettled(client, skus, target.databases) == 0:
                return
            await asyncio.sleep(1.0)
    finally:
        await client.close()


def flash_verdict(target: Target, prepared: Prepared, buyers: int) -> Verdict:
    """The sale ends with every unit sold once: min(units, buyers) sold, none left reserved."""
    path = f"/api/v1/inventory/{prepared.flash_sku}"
    level = call(target, "GET", path, token=admin_token(target))
    sold = prepared.units - int(level["on_hand"])
    wanted = min(prepared.units, buyers)
    return Verdict(
        f"exactly {wanted} units sold",
        sold == wanted and int(level["reserved"]) == 0,
        f"{buyers} buyers for {prepared.units} units: {sold} sold, "
        f"{level['reserved']} still reserved, {level['available']} available",
    )


def fault_verdicts(window: faults.Window, out: Path, total_failures: int) -> list[Verdict]:
    """Whole again within RECOVERY_LIMIT of the fault's cause being lifted; requests failed only
    while it lasted (counted); a rolling restart fails none at all."""
    history = report.failures_by_second(out)
    before = max((count for at, count in history if at < window.began), default=0)
    # Per-second history: a failure in the second a fault began counts as during it.
    failing = [
        at for (at, count), (_, prior) in zip(history[1:], history, strict=False) if count > prior
    ]
    last_failure = max(failing, default=window.began)
    whole = max(window.recovered or float("inf"), last_failure)
    recovery = whole - window.lifted
    verdicts = [
        Verdict(
            f"whole again within {RECOVERY_LIMIT:.0f} s",
            recovery <= RECOVERY_LIMIT,
            f"fault {window.ended - window.began:.0f} s long; every instance ready and no request "
            f"failing {max(recovery, 0):.1f} s after its cause was lifted",
        ),
        Verdict(
            "requests failed only while the fault lasted",
            before == 0 and last_failure <= whole,
            f"{before} failed before it, {total_failures - before} during it and its recovery",
        ),
    ]
    if window.name == "rolling-restart":
        verdicts.append(
            Verdict(
                "a rolling restart fails no request",
                total_failures == 0,
                f"{total_failures} failed",
            )
        )
    return verdicts


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("users", nargs="?", type=int, help="Locust users (default per scenario)")
    parser.add_argument(
        "duration", nargs="?", type=int, help="seconds at most (default per scenario)"
    )
    parser.add_argument("--units", type=int, default=300, help="the flash sale's units")
    parser.add_argument("--gateway", default=GATEWAY)
    parser.add_argument("--mongo-url", help="default: MONGO_URL of .env.example/.env")
    parser.add_argument("--stripe-url", help="the recording proxy; default: STRIPE_API_URL")
    parser.add_argument("--webhook-secret", help="default: STRIPE_WEBHOOK_SECRET")
    parser.add_argument("--password-pepper", help="default: PASSWORD_PEPPER")
    parser.add_argument("--databases", help="service=database,... where not named after it")
    parser.add_argument(
        "--hash-cost",
        type=int,
        default=4,
        help="bcrypt cost of the seeded accounts' password (the service verifies at the hash's "
        "own cost: 4 keeps sign-in from measuring bcrypt alone; 12 is production's)",
    )
    parser.add_argument("--out", type=Path, help="default: .run/load/<scenario>-<time>")
    parser.add_argument("--strict", action="store_true", help="exit 1 on any failed request too")
    parser.add_argument("--fault", choices=sorted(faults.FAULTS), help="inject this fault")
    parser.add_argument("--fault-at", type=float, default=15.0, help="seconds into the run")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    scenario = SCENARIOS[args.scenario]
    users = args.users or scenario.users
    duration = float(args.duration or scenario.duration)
    if args.fault:
        duration = max(duration, args.fault_at + faults.FAULTS[args.fault].seconds + AFTER_FAULT)
    target = local_target(
        args.gateway,
        mongo_url=args.mongo_url,
        stripe_url=args.stripe_url,
        webhook_secret=args.webhook_secret,
        password_pepper=args.password_pepper,
        databases=args.databases,
    )
    out = args.out or ROOT / ".run" / "load" / f"{args.scenario}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)

    since = datetime.now(UTC)
    prepared = prepare(target, scenario, users, args.units, args.hash_cost)
    data_file = out / "data.json"
    data_file.write_text(json.dumps(prepared.data))
    stripe_start, _ = recorded(target, 2**62)  # the count alone
    title = f"{args.scenario}{f', fault {args.fault}' if args.fault else ''}: {users} users"
    print(f"{title}, {duration:.0f} s at most, against {target.gateway}", flush=True)

    windows: list[faults.Window] = []
    broken: list[BaseException] = []

    def inject() -> None:
        time.sleep(args.fault_at)
        print(f"fault: {args.fault}", flush=True)
        try:
            windows.append(faults.inject(args.fault))
        except BaseException as error:  # reported as a failed verdict, not lost with the thread
            broken.append(error)

    injector = threading.Thread(target=inject, daemon=True) if args.fault else None
    if injector is not None:
        injector.start()
    cpu, seconds = run_locust(scenario, users, duration, data_file, out, target.gateway)
    if injector is not None:
        injector.join()

    asyncio.run(settle(target, prepared.skus))
    _, requests = recorded(target, stripe_start)
    verdicts = asyncio.run(
        invariants.check(
            target.mongo_url, requests, prepared.skus, since=since, databases=target.databases
        )
    )
    if prepared.flash_sku:
        verdicts.append(flash_verdict(target, prepared, users))
    figures = report.read(out)
    marks: list[tuple[float, float, str]] = []
    if args.fault and not windows:
        verdicts.append(Verdict(f"fault {args.fault} injected", False, repr(broken[:1])))
    for window in windows:
        verdicts += fault_verdicts(window, out, figures.total.failures)
        start = report.failures_by_second(out)[0][0]
        marks.append((window.began - start, window.ended - start, window.name))
    notes = [f"\nreport: {out / 'report.html'}; plots: {out}/throughput.png, latency.png"]
    summary = report.summary(title, figures, verdicts, cpu, seconds, notes)
    (out / "summary.md").write_text(summary)
    report.plot(out, title, marks)
    print(summary)
    failed = figures.total.failures > 0 or bool(figures.errors)
    if not all(verdict.passed for verdict in verdicts) or (args.strict and failed):
        sys.exit(1)


if __name__ == "__main__":
    main()
