"""`./task load -- <scenario> [users] [duration]`: one Locust scenario, headless and bounded, against
the local stack (or the gateway given); then the invariants from the databases and the Stripe
recording proxy, a summary table and plots.

Scenarios (locustfile.py has the users):
  steady         shoppers browse, search, fill carts and sometimes check out (guests and accounts)
  flash-sale     many signed-in buyers for a few hundred units of one SKU (--units, default 300)
  double-submit  each checkout sent five times at once under one Idempotency-Key
  webhook-storm  each order's Stripe events duplicated and out of order

Everything is written to .run/load/<scenario>-<time>/: Locust's CSV and HTML report, summary.md,
throughput.png and latency.png. The exit status is 1 when an invariant fails, or, with --strict,
when any request failed (the gate `./task test` runs).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import resource
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import faults
import invariants
import seeding
from pymongo import AsyncMongoClient

from shopkit.settings import read_env_file
from users.passwords import Hasher

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PASSWORD = "load test password"
# nginx lets one address sign in 10 times a second (burst 20): buyers who sign in before a sale
# opens are signed in just under it.
LOGIN_RATE = 9.0
SKU_STOCK = 1_000_000
# After the users stop: time for the last webhooks' effects (orders paid, stock committed) to land.
SETTLE_TIMEOUT = 60.0
CATALOG_MINIMUM = 100
# A fault's end to the platform whole again (every service ready, no request failing).
RECOVERY_LIMIT = 30.0


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
    "flash-sale": Scenario(("FlashBuyer",), users=500, duration=60, spawn_rate=100, signed_in=True),
    "double-submit": Scenario(("DoubleSubmitter",), users=20, duration=45, spawn_rate=5),
    "webhook-storm": Scenario(("WebhookStorm",), users=20, duration=45, spawn_rate=5),
}


@dataclass(frozen=True, slots=True)
class Target:
    """The platform under load: its gateway, its database server, its Stripe recording proxy."""

    gateway: str
    mongo_url: str
    stripe_url: str
    webhook_secret: str
    admin_email: str
    admin_password: str
    password_pepper: str
    # Each service's database (the local stack's are named after the service).
    databases: Mapping[str, str]


@dataclass(slots=True)
class Prepared:
    data: dict[str, Any]
    skus: list[str]
    flash_sku: str | None = None
    units: int = 0


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float


@dataclass(slots=True)
class Outcome:
    rows: list[Row]
    verdicts: list[invariants.Verdict]
    generator_cpu: float
    seconds: float
    notes: list[str] = field(default_factory=list)
    window: faults.Window | None = None

    @property
    def total(self) -> Row:
        return next(row for row in self.rows if row.name == "Aggregated")

    @property
    def passed(self) -> bool:
        return all(verdict.passed for verdict in self.verdicts)


def stack_settings() -> dict[str, str]:
    values = read_env_file(ROOT / ".env.example")
    if (ROOT / ".env").exists():
        values.update(read_env_file(ROOT / ".env"))
    return values


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


def product(target: Target, admin: str, units: Sequence[int]) -> list[str]:
    """A published product with one SKU per entry of `units`, each with that much stock."""
    tag = uuid.uuid4().hex[:8]
    skus = [f"LOAD-{tag}-{index}".upper() for index in range(len(units))]
    call(
        target,
        "POST",
        "/api/v1/products",
        {
            "slug": f"load-{tag}",
            "name": f"Load test {tag}",
            "description": "Bought by the load tests.",
            "status": "published",
            "variants": [
                {"sku": sku, "price": {"amount": 2500, "currency": "EUR"}, "attributes": {"n": sku}}
                for sku in skus
            ],
        },
        admin,
    )
    for sku, count in zip(skus, units, strict=True):
        call(
            target,
            "POST",
            f"/api/v1/inventory/{sku}/receipts",
            {"quantity": count, "reason": "load test"},
            admin,
        )
    return skus


def browsing(target: Target) -> dict[str, list[str]]:
    """What shoppers browse: the catalog's categories, products and words from their names."""
    products = call(target, "GET", "/api/v1/products?limit=100")["items"]
    if len(products) < CATALOG_MINIMUM and target.gateway.endswith(":8080"):
        print("the catalog is small: loading the demo catalog (./task seed)...", flush=True)
        subprocess.run([sys.executable, str(ROOT / "scripts" / "seed.py")], check=True)
        products = call(target, "GET", "/api/v1/products?limit=100")["items"]
    categories = call(target, "GET", "/api/v1/categories")["items"]
    words = sorted({word.lower() for p in products for word in p["name"].split() if len(word) > 3})
    return {
        "products": [p["slug"] for p in products],
        "categories": [c["slug"] for c in categories] or [""],
        "search_words": words[:200] or ["mug"],
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
    """Each account's access token, just under the gateway's login rate."""
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
    admin = call(
        target,
        "POST",
        "/api/v1/auth/login",
        {"email": target.admin_email, "password": target.admin_password},
    )["access_token"]
    data: dict[str, Any] = {"webhook_secret": target.webhook_secret, **browsing(target)}
    prepared = Prepared(data, product(target, admin, [SKU_STOCK] * 20))
    data["skus"] = prepared.skus
    if "FlashBuyer" in scenario.classes:
        [prepared.flash_sku] = product(target, admin, [units])
        prepared.units = units
        prepared.skus.append(prepared.flash_sku)
        data["flash_sku"] = prepared.flash_sku
    data["accounts"] = asyncio.run(accounts(target, users, hash_cost))
    if scenario.signed_in:
        started = time.monotonic()
        asyncio.run(sign_in(target, data["accounts"]))
        print(f"signed {users} buyers in in {time.monotonic() - started:.0f} s", flush=True)
    return prepared


def recorded_total(target: Target) -> int:
    with urllib.request.urlopen(f"{target.stripe_url}/_proxy/requests?from=0", timeout=10) as r:  # noqa: S310
        return int(json.loads(r.read())["total"])


def recorded_since(target: Target, start: int) -> list[dict[str, Any]]:
    url = f"{target.stripe_url}/_proxy/requests?from={start}"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310
        requests: list[dict[str, Any]] = json.loads(response.read())["requests"]
        return requests


def run_locust(
    scenario: Scenario, users: int, duration: int, data_file: Path, out: Path, target: Target
) -> tuple[float, float]:
    """Locust, headless, for `duration` seconds: its CPU seconds and the wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(HERE / "locustfile.py"),
        "--headless",
        "--host",
        target.gateway,
        "--users",
        str(users),
        "--spawn-rate",
        str(min(scenario.spawn_rate, users)),
        "--run-time",
        f"{duration}s",
        "--stop-timeout",
        "10",
        "--csv",
        str(out / "locust"),
        "--csv-full-history",
        "--html",
        str(out / "report.html"),
        "--only-summary",
        "--loglevel",
        "WARNING",
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


def read_rows(out: Path) -> list[Row]:
    """The figures the locustfile wrote as Locust quit (per endpoint, then "Aggregated")."""
    rows = json.loads((out / "figures.json").read_text())
    return [
        Row(r["name"], r["requests"], r["failures"], r["rps"], r["p50"], r["p95"], r["p99"])
        for r in rows
    ]


async def settle(target: Target, prepared: Prepared) -> None:
    """Wait until no order of the run is still between placed and paid (its webhook's effects
    land on the bus a moment after the answer), or SETTLE_TIMEOUT."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    client: AsyncMongoClient[Any] = AsyncMongoClient(target.mongo_url, timeoutMS=30_000)
    try:
        while time.monotonic() < deadline:
            open_orders = await invariants.unsettled(client, prepared.skus, target.databases)
            if open_orders == 0:
                return
            await asyncio.sleep(1.0)
    finally:
        await client.close()


def flash_verdict(target: Target, prepared: Prepared, buyers: int) -> invariants.Verdict:
    """The sale ends with every unit sold once: min(units, buyers) sold, none left reserved."""
    admin = call(
        target,
        "POST",
        "/api/v1/auth/login",
        {"email": target.admin_email, "password": target.admin_password},
    )["access_token"]
    level = call(target, "GET", f"/api/v1/inventory/{prepared.flash_sku}", token=admin)
    sold = prepared.units - int(level["on_hand"])
    wanted = min(prepared.units, buyers)
    return invariants.Verdict(
        f"exactly {wanted} units sold",
        sold == wanted and int(level["reserved"]) == 0,
        f"{buyers} buyers for {prepared.units} units: {sold} sold, "
        f"{level['reserved']} still reserved, {level['available']} available",
    )


def failures_by_second(out: Path) -> list[tuple[float, int]]:
    """(Unix second, failures so far) of the whole run, from Locust's per-second history."""
    with (out / "locust_stats_history.csv").open() as stats:
        return [
            (float(row["Timestamp"]), int(row["Total Failure Count"]))
            for row in csv.DictReader(stats)
            if row["Name"] == "Aggregated"
        ]


def fault_verdicts(
    window: faults.Window, out: Path, total_failures: int
) -> list[invariants.Verdict]:
    """Recovered on its own within RECOVERY_LIMIT of the fault's end; no request failed but
    those in flight while it lasted; a rolling restart fails none at all."""
    history = failures_by_second(out)
    before = max((count for at, count in history if at < window.began), default=0)
    # The history is per second: a failure in the second the fault began counts as during it.
    failing = [
        at for (at, count), (_, prior) in zip(history[1:], history, strict=False) if count > prior
    ]
    last_failure = max(failing, default=window.began)
    settled = max(window.recovered or float("inf"), last_failure)
    during = total_failures - before
    recovery = settled - window.ended
    verdicts = [
        invariants.Verdict(
            f"recovered on its own within {RECOVERY_LIMIT:.0f} s",
            recovery <= RECOVERY_LIMIT,
            f"fault {window.ended - window.began:.0f} s long; whole again "
            f"{max(recovery, 0):.1f} s after it ended",
        ),
        invariants.Verdict(
            "requests failed only while the fault lasted",
            before == 0 and last_failure <= max(window.recovered or 0, window.ended) + 1,
            f"{before} failed before it, {during} during it and its recovery",
        ),
    ]
    if window.name == "rolling-restart":
        verdicts.append(
            invariants.Verdict(
                "a rolling restart fails no request",
                total_failures == 0,
                f"{total_failures} failed",
            )
        )
    return verdicts


def summary(scenario: str, users: int, duration: int, outcome: Outcome) -> str:
    total = outcome.total
    ratio = total.failures / total.requests if total.requests else 0.0
    fault = f", fault {outcome.window.name}" if outcome.window else ""
    lines = [
        f"## {scenario}{fault}: {users} users for {duration} s",
        "",
        f"{total.requests} requests, {total.rps:.1f}/s, failure ratio {ratio:.4f}; "
        f"generator CPU {outcome.generator_cpu:.1f} s in {outcome.seconds:.0f} s "
        f"({100 * outcome.generator_cpu / max(outcome.seconds, 1e-9):.0f}% of one core)",
        "",
        "| endpoint | requests | failed | req/s | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in outcome.rows:
        lines.append(
            f"| {row.name} | {row.requests} | {row.failures} | {row.rps:.1f} | {row.p50:.0f} "
            f"| {row.p95:.0f} | {row.p99:.0f} |"
        )
    lines += ["", "| invariant | result | detail |", "|---|---|---|"]
    for verdict in outcome.verdicts:
        lines.append(
            f"| {verdict.name} | {'pass' if verdict.passed else 'FAIL'} | {verdict.detail} |"
        )
    lines += [*outcome.notes]
    return "\n".join(lines) + "\n"


def plot(out: Path, title: str, faults: Sequence[tuple[float, float, str]] = ()) -> None:
    """throughput.png and latency.png from Locust's per-second history; fault windows (seconds
    from the start, with a label) shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history: list[Mapping[str, str]] = []
    with (out / "locust_stats_history.csv").open() as stats:
        history = [row for row in csv.DictReader(stats) if row["Name"] == "Aggregated"]
    if not history:
        return
    start = int(history[0]["Timestamp"])
    seconds = [int(row["Timestamp"]) - start for row in history]

    def series(column: str) -> list[float]:
        return [float(row[column]) if row[column] not in ("", "N/A") else 0.0 for row in history]

    figures = {
        "throughput.png": (
            "requests per second",
            {"requests/s": series("Requests/s"), "failures/s": series("Failures/s")},
        ),
        "latency.png": (
            "latency (ms)",
            {"p50": series("50%"), "p95": series("95%"), "p99": series("99%")},
        ),
    }
    for name, (label, lines) in figures.items():
        figure, axes = plt.subplots(figsize=(9, 3.5))
        for legend, values in lines.items():
            axes.plot(seconds, values, label=legend)
        for begin, end, what in faults:
            axes.axvspan(begin, end, color="tab:red", alpha=0.15)
            axes.annotate(what, (begin, axes.get_ylim()[1] * 0.92), fontsize=8)
        axes.set_title(f"{title}: {label}", fontsize=10)
        axes.set_xlabel("seconds")
        axes.set_ylabel(label)
        axes.legend(loc="upper right")
        axes.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(out / name, dpi=90)
        plt.close(figure)


def target_of(args: argparse.Namespace, settings: Mapping[str, str]) -> Target:
    named = dict(pair.split("=", 1) for pair in (args.databases or "").split(",") if pair)
    return Target(
        gateway=args.gateway.rstrip("/"),
        mongo_url=args.mongo_url or settings["MONGO_URL"],
        stripe_url=(args.stripe_url or settings["STRIPE_API_URL"]).rstrip("/"),
        webhook_secret=args.webhook_secret or settings["STRIPE_WEBHOOK_SECRET"],
        admin_email=settings["ADMIN_EMAIL"],
        admin_password=settings["ADMIN_PASSWORD"],
        password_pepper=args.password_pepper or settings["PASSWORD_PEPPER"],
        databases={
            name: named.get(name, name) for name in ("users", "products", "orders", "payments")
        },
    )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("users", nargs="?", type=int, help="Locust users (default per scenario)")
    parser.add_argument("duration", nargs="?", type=int, help="seconds (default per scenario)")
    parser.add_argument("--units", type=int, default=300, help="the flash sale's units")
    parser.add_argument("--gateway", default="http://127.0.0.1:8080")
    parser.add_argument("--mongo-url", help="default: MONGO_URL of .env.example/.env")
    parser.add_argument("--stripe-url", help="the recording proxy; default STRIPE_API_URL")
    parser.add_argument("--webhook-secret", help="default: STRIPE_WEBHOOK_SECRET")
    parser.add_argument("--password-pepper", help="default: PASSWORD_PEPPER")
    parser.add_argument(
        "--databases", help="service=database,... where they are not named after the service"
    )
    parser.add_argument(
        "--hash-cost",
        type=int,
        default=4,
        help="bcrypt cost of the seeded accounts' password (the service verifies at the hash's "
        "own cost: 4 keeps sign-in from measuring bcrypt alone; 12 is production's)",
    )
    parser.add_argument("--out", type=Path, help="default: .run/load/<scenario>-<time>")
    parser.add_argument("--strict", action="store_true", help="exit 1 on any failed request too")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the shoppers")
    parser.add_argument("--fault", choices=sorted(faults.FAULTS), help="inject this fault")
    parser.add_argument(
        "--fault-at", type=float, default=15.0, help="seconds into the run the fault begins"
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> Outcome:
    scenario = SCENARIOS[args.scenario]
    users = args.users or scenario.users
    duration = args.duration or scenario.duration
    target = target_of(args, stack_settings())
    out = args.out or ROOT / ".run" / "load" / f"{args.scenario}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    random.seed(args.seed)

    since = datetime.now(UTC)
    prepared = prepare(target, scenario, users, args.units, args.hash_cost)
    data_file = out / "data.json"
    data_file.write_text(json.dumps(prepared.data))
    stripe_start = recorded_total(target)
    print(f"{args.scenario}: {users} users for {duration} s against {target.gateway}", flush=True)
    windows: list[faults.Window] = []
    injector = None
    if args.fault:

        def inject() -> None:
            time.sleep(args.fault_at)
            print(f"fault: {args.fault}", flush=True)
            windows.append(faults.inject(args.fault))

        injector = threading.Thread(target=inject, daemon=True)
        injector.start()
    cpu, seconds = run_locust(scenario, users, duration, data_file, out, target)
    if injector is not None:
        injector.join()
    asyncio.run(settle(target, prepared))
    verdicts = asyncio.run(
        invariants.check(
            target.mongo_url,
            recorded_since(target, stripe_start),
            prepared.skus,
            since=since,
            databases=target.databases,
        )
    )
    if prepared.flash_sku:
        verdicts.append(flash_verdict(target, prepared, users))
    outcome = Outcome(read_rows(out), verdicts, cpu, seconds)
    marks: list[tuple[float, float, str]] = []
    if windows:
        outcome.window = window = windows[0]
        outcome.verdicts += fault_verdicts(window, out, outcome.total.failures)
        start = failures_by_second(out)[0][0]
        marks.append((window.began - start, window.ended - start, window.name))
    outcome.notes.append(
        f"\nreport: {out / 'report.html'}; plots: {out}/throughput.png, latency.png"
    )
    (out / "summary.md").write_text(summary(args.scenario, users, duration, outcome))
    plot(out, f"{args.scenario}, {users} users", marks)
    return outcome


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    outcome = run(args)
    users = args.users or SCENARIOS[args.scenario].users
    duration = args.duration or SCENARIOS[args.scenario].duration
    print(summary(args.scenario, users, duration, outcome))
    failed_requests = outcome.total.failures > 0
    if not outcome.passed or (args.strict and failed_requests):
        sys.exit(1)


if __name__ == "__main__":
    main()
