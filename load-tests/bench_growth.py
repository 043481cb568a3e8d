"""Benchmark: the hot paths of users and products as their databases grow, beside /healthz.

Starts its own FerretDB (on PostgreSQL, or SQLite with --backend sqlite), NATS, OpenSearch, two
instances of each service (their console scripts) and an nginx gateway, on free loopback ports in a
temporary folder. Measures on a small database, then bulk-loads straight into the services' databases,
in the documents their stores write (100,000 users, 50,000 products, then 100,000 and 1,000,000
stock-ledger events by default), and measures again at each size: login, /users/me, a cold product
read, a reservation on a cold SKU, a cold stock level read and a category write, beside /healthz.
"Cold": every request names an item no earlier request touched, so no instance has it cached. Every
measured SKU has a history whose last snapshot lags 0-24 events behind, as the service leaves it (the
small database holds only the SKUs measured), so the sizes differ in the collections' sizes alone.
Prints p50/p99 per size and the ratio to the small database (target: 2x at most), requests/s and
a cold product read's share of /healthz's (target: 25% at least), the server CPU per request by
process, and the collections PostgreSQL read in full meanwhile.
Usage: ./task bench:growth [-- --quick] [-- --backend sqlite] [-- --events 100000,1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import math
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiohttp
from pymongo import AsyncMongoClient

from products import demo
from products.catalog.categories import Categories
from products.catalog.store import ProductStore
from products.catalog.store import stream as product_stream
from products.inventory import ledger
from products.inventory.stock import SNAPSHOT_EVERY, ledger_stream
from products.inventory.store import InventoryStore
from products.model import Product, ProductStatus, Variant
from products.seed import seed_categories
from shopkit import clock
from shopkit.events import Event, EventStore, NewEvent
from shopkit.ids import new_id
from shopkit.money import Money
from shopkit.settings import read_env_file
from shopkit.testing import peers
from shopkit.testing.peers import Peer, PeerFailed, Postgres
from users.passwords import Hasher
from users.signing import SigningKeys

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import gateway  # noqa: E402 (scripts/ is no package)
import seeding  # noqa: E402

ACTOR = "system:bench-growth"
PASSWORD = "growth bench password"
CHUNK = 1_000
LOADERS = 2  # bulk inserts in flight: two cores, shared with FerretDB and PostgreSQL
LOGIN_RATE = 8.0  # per second: under nginx's 10 r/s login limit
SETTLE = 5.0  # seconds of quiet after loading, for checkpoints and autovacuum to pass
HEALTHZ = "GET /api/v1/products/healthz"
COLD_READ = "GET /api/v1/products/{id}, cold"
T = TypeVar("T")
PEER_KINDS = ("nginx", "users", "products", "ferretdb", "postgres", "nats", "opensearch")


@dataclass(frozen=True, slots=True)
class Size:
    """What the databases hold when a phase is measured."""

    name: str
    users: int
    products: int
    events: int


@dataclass(slots=True)
class Figures:
    """One operation measured: latencies in ms, answers by status, wall and client CPU seconds."""

    latencies: list[float]
    statuses: collections.Counter[int]
    expected: int
    seconds: float
    cpu: float
    # CPU seconds each kind of peer used meanwhile (background work included), by peer name.
    servers: dict[str, float] = field(default_factory=dict)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)]

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def failures(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != self.expected)


async def measure(
    count: int,
    concurrency: int,
    attempt: Callable[[int], Awaitable[int]],
    expected: int,
    rate: float | None = None,
) -> Figures:
    """Run `attempt(0..count-1)` on `concurrency` workers (at most `rate` starts a second)."""
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    numbers = iter(range(count))
    started, cpu = time.perf_counter(), time.process_time()

    async def worker() -> None:
        for number in numbers:
            if rate is not None:
                await asyncio.sleep(max(0.0, started + number / rate - time.perf_counter()))
            begun = time.perf_counter()
            statuses[await attempt(number)] += 1
            latencies.append((time.perf_counter() - begun) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Figures(
        latencies, statuses, expected, time.perf_counter() - started, time.process_time() - cpu
    )


class Pool(Generic[T]):
    """Items not measured yet, handed out at random so every pick is cold."""

    def __init__(self, rng: random.Random) -> None:
        self._rng, self._items = rng, list[T]()

    def add(self, items: Iterable[T]) -> None:
        self._items += items
        self._rng.shuffle(self._items)

    def discard(self, items: set[T]) -> None:
        self._items = [item for item in self._items if item not in items]

    def take(self, count: int, what: str) -> list[T]:
        if len(self._items) < count:
            raise SystemExit(f"only {len(self._items)} unused {what} left, {count} wanted")
        taken, self._items = self._items[:count], self._items[count:]
        return taken

    def clear(self) -> None:
        self._items = []


def history(sku: str, length: int) -> list[tuple[NewEvent, ledger.Ledger]]:
    """A SKU's ledger as trade leaves it, with the level after each event: a receipt, then orders
    reserving and committing one unit each, and a restock to end on when an order would be open."""
    expires_at = clock.now() + timedelta(minutes=15)
    state = ledger.Ledger()
    made: list[tuple[NewEvent, ledger.Ledger]] = []
    order: str | None = None
    for seq in range(1, length + 1):
        wanted: NewEvent | None
        if seq == 1 or (order is None and seq == length):
            wanted = ledger.receive(state, sku, length, ACTOR, "bench load", None)
        elif order is None:
            order = f"load-{seq}"
            wanted = ledger.reserve(state, sku, order, 1, 1, ACTOR, expires_at)
        else:
            wanted = ledger.commit(state, sku, order, 1, ACTOR, "paid")
            order = None
        assert wanted is not None
        event = Event("", ledger_stream(sku), seq, wanted.type, wanted.data, clock.now())
        state = ledger.fold(state, event)
        made.append((wanted, state))
    return made


@dataclass(slots=True)
class Loader:
    """Bulk-loads the services' databases with the documents their own writes leave."""

    users_db: Any
    products_db: Any
    password_hash: str
    rng: random.Random
    snapshots: bool
    user_ids: list[str] = field(default_factory=list)
    product_ids: list[str] = field(default_factory=list)
    visible: list[str] = field(default_factory=list)
    skus: list[str] = field(default_factory=list)
    product_of: dict[str, str] = field(default_factory=dict)
    stocked: set[str] = field(default_factory=set)
    events: int = 0
    category_ids: dict[str, str] = field(default_factory=dict)

    async def users_to(self, total: int) -> range:
        """Accounts as registration leaves them once its events are flushed; the new numbers."""
        start = len(self.user_ids)

        async def chunk(numbers: range) -> None:
            emails = [email_of(number) for number in numbers]
            self.user_ids += await seeding.accounts(self.users_db, emails, self.password_hash)

        await in_chunks(range(start, total), chunk)
        return range(start, total)

    async def products_to(self, total: int) -> None:
        """Demo products as the catalog writes them: claims, a `product.changed` stream each,
        the projection."""
        events, store = EventStore(self.products_db), ProductStore(self.products_db)
        categories = Categories(events)
        if not self.category_ids:
            self.category_ids = await seed_categories(categories)
        paths = {slug: await categories.path(cid) for slug, cid in self.category_ids.items()}
        start = len(self.product_ids)
        items = list(itertools.islice(demo.products(total), start, total))

        async def chunk(numbers: range) -> None:
            now = clock.now()
            products = []
            for index in numbers:
                item = items[index - start]
                body = item.body
                products.append(
                    Product(
                        id=new_id(),
                        slug=body["slug"],
                        name=body["name"],
                        description=body["description"],
                        brand=body["brand"],
                        category_id=self.category_ids[item.category],
                        category_path=paths[item.category],
                        attributes=body["attributes"],
                        images=tuple(body["images"]),
                        status=ProductStatus(body["status"]),
                        variants=tuple(variant(v) for v in body["variants"]),
                        version=1,
                        created_at=now,
                        updated_at=now,
                        updated_by=ACTOR,
                    )
                )
            claims = [(p.slug, p.id) for p in products]
            sku_claims = [(v.sku, p.id) for p in products for v in p.variants]
            await store.slugs.insert_many([claim(k, p, now) for k, p in claims])
            await store.skus.insert_many([claim(k, p, now) for k, p in sku_claims])
            await events.append_batch(
                {product_stream(p.id): [NewEvent("product.changed", p.to_json())] for p in products}
            )
            await store.products.insert_many([store.document(p) for p in products])
            for product in products:
                self.product_ids.append(product.id)
                if product.visible:
                    self.visible.append(product.id)
                for v in product.variants:
                    self.product_of[v.sku] = product.id
            self.skus += [sku for sku, _ in sku_claims]

        await in_chunks(range(start, total), chunk, size=CHUNK // 2)

    async def stock(self, skus: Sequence[str], length: int) -> None:
        """Each SKU's stock stream, `length` events long, with the snapshot the service would
        have saved (every SNAPSHOT_EVERY events; the last one up to SNAPSHOT_EVERY - 1 behind)."""
        events, inventory = EventStore(self.products_db), InventoryStore(self.products_db)
        per_chunk = max(1, 10 * CHUNK // length)

        async def chunk(numbers: range) -> None:
            streams, snapshots = {}, []
            for index in numbers:
                sku = skus[index]
                made = history(sku, length)
                streams[ledger_stream(sku)] = [wanted for wanted, _ in made]
                seq = length - self.rng.randrange(SNAPSHOT_EVERY)
                if self.snapshots and seq >= SNAPSHOT_EVERY:
                    snapshots.append((sku, made[seq - 1][1], seq))
            await events.append_batch(streams)
            for sku, state, seq in snapshots:
                await inventory.save_snapshot(sku, state, seq)
            self.stocked.update(skus[index] for index in numbers)
            self.events += length * len(numbers)

        await in_chunks(range(len(skus)), chunk, size=per_chunk)

    def unstocked(self, count: int) -> list[str]:
        """SKUs with no ledger yet, spread over the whole catalog."""
        free = [sku for sku in self.skus if sku not in self.stocked]
        if len(free) < count:
            raise SystemExit(f"the catalog has {len(free)} SKUs without stock, {count} wanted")
        return self.rng.sample(free, count)


def variant(body: dict[str, Any]) -> Variant:
    compare = body.get("compare_at_price")
    return Variant(
        sku=body["sku"],
        price=Money(**body["price"]),
        attributes=body["attributes"],
        compare_at_price=Money(**compare) if compare else None,
    )


def claim(key: str, product_id: str, at: Any) -> dict[str, Any]:
    return {"_id": key, "product_id": product_id, "at": at}


def email_of(number: int) -> str:
    return f"growth-{number:07d}@example.com"


async def in_chunks(
    numbers: range, load: Callable[[range], Awaitable[None]], size: int = CHUNK
) -> None:
    """`load` every chunk of `numbers`, LOADERS at a time."""
    chunks = iter(range(numbers.start, numbers.stop, size))

    async def worker() -> None:
        for start in chunks:
            await load(range(start, min(start + size, numbers.stop)))

    await asyncio.gather(*(worker() for _ in range(LOADERS)))


@dataclass(slots=True)
class Bench:
    """The running stack as the measurements see it."""

    session: aiohttp.ClientSession
    stack: Stack
    signing: SigningKeys
    env: Mapping[str, str]
    args: argparse.Namespace
    category: tuple[str, str] = ("", "")  # id, ETag

    def token(self, subject: str, *roles: str) -> dict[str, str]:
        token = self.signing.sign(
            subject=subject,
            roles=roles,
            issuer=self.env["JWT_ISSUER"],
            audience=self.env["JWT_AUDIENCE"],
            ttl=3600,
            extra={"sid": "bench-growth"},
        )
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> tuple[int, aiohttp.ClientResponse | None]:
        """The status (0 when no answer came) and the response."""
        try:
            async with self.session.request(method, url, headers=headers, json=body) as response:
                await response.read()
                return response.status, response
        except (aiohttp.ClientError, TimeoutError):
            return 0, None


async def measure_phase(bench: Bench, loader: Loader, unmeasured: Unmeasured) -> dict[str, Figures]:
    """Every operation on this database, each on items no earlier measurement touched."""
    args, base, instances = bench.args, bench.stack.gateway, bench.stack.products
    users, products, skus = unmeasured.users, unmeasured.products, unmeasured.skus
    count, concurrency = args.requests, args.concurrency
    staff, service = bench.token("bench-staff", "staff"), bench.token("service:orders", "service")
    admin = bench.token("bench-admin", "admin")
    # Warm up: keepalive connections on both hops, each products instance's JWKS, a tree refresh.
    warm = skus.take(2, "SKUs")
    for number in range(20):
        await bench.call("GET", f"{base}/api/v1/products/healthz")
        await bench.call("GET", f"{base}/api/v1/users/healthz")
        await bench.call("GET", f"{base}/api/v1/inventory/{warm[number % 2]}", staff)
    reserving, reading = skus.take(count, "SKUs"), skus.take(count, "SKUs")
    # A product read after its SKU's would hit the instance's cache: keep those apart.
    products.discard({loader.product_of[sku] for sku in warm + reserving + reading})
    results: dict[str, Figures] = {}

    async def record(name: str, measuring: Awaitable[Figures]) -> None:
        before = cpu_seconds(bench.stack.sessions)
        figures = await measuring
        after = cpu_seconds(bench.stack.sessions)
        figures.servers = {kind: after[kind] - before.get(kind, 0.0) for kind in after}
        results[name] = figures

    async def get(url: str, headers: Mapping[str, str] | None = None) -> int:
        return (await bench.call("GET", url, headers))[0]

    await record(
        HEALTHZ, measure(count, concurrency, lambda _: get(f"{base}/api/v1/products/healthz"), 200)
    )
    await record(
        "GET /api/v1/users/healthz",
        measure(count, concurrency, lambda _: get(f"{base}/api/v1/users/healthz"), 200),
    )
    ids = products.take(count, "products")
    await record(
        COLD_READ,
        measure(count, concurrency, lambda n: get(f"{base}/api/v1/products/{ids[n]}"), 200),
    )
    logins = [email_of(n) for n in users.take(args.serial, "users")]
    await record(
        "POST /api/v1/auth/login",
        measure(args.serial, 2, lambda n: login(bench, logins[n]), 200, rate=LOGIN_RATE),
    )
    tokens = [bench.token(loader.user_ids[n], "customer") for n in users.take(count, "users")]
    await record(
        "GET /api/v1/users/me, cold",
        measure(count, concurrency, lambda n: get(f"{base}/api/v1/users/me", tokens[n]), 200),
    )
    orders = [f"growth-{uuid.uuid4().hex[:12]}" for _ in range(count)]

    async def reserve(n: int) -> int:
        status, _ = await bench.call(
            "POST",
            f"{instances[n % len(instances)]}/internal/inventory/reservations",
            service,
            {"order_id": orders[n], "lines": [{"sku": reserving[n], "quantity": 1}]},
        )
        return status

    await record("POST reservation, cold SKU (direct)", measure(count, concurrency, reserve, 201))
    await record(
        "GET /api/v1/inventory/{sku}, cold",
        measure(
            count, concurrency, lambda n: get(f"{base}/api/v1/inventory/{reading[n]}", staff), 200
        ),
    )

    async def write_category(n: int) -> int:
        category_id, etag = bench.category
        status, response = await bench.call(
            "PATCH",
            f"{base}/api/v1/categories/{category_id}",
            {**admin, "If-Match": etag},
            {"name": f"Growth bench {n}", "position": n},
        )
        if response is not None and status == 200:
            bench.category = (category_id, response.headers["ETag"])
        return status

    await record("PATCH /api/v1/categories/{id}", measure(args.serial, 1, write_category, 200))
    # Let the orders go, as unpaid orders would, so the sweeper's list stays small.
    release = asyncio.Semaphore(concurrency)

    async def let_go(n: int) -> None:
        async with release:
            await bench.call(
                "POST",
                f"{instances[n % len(instances)]}/internal/inventory/reservations"
                f"/{orders[n]}/release",
                service,
                {"reason": "bench"},
            )

    await asyncio.gather(*(let_go(n) for n in range(count)))
    return results


async def login(bench: Bench, email: str) -> int:
    status, _ = await bench.call(
        "POST",
        f"{bench.stack.gateway}/api/v1/auth/login",
        body={"email": email, "password": PASSWORD},
    )
    return status


# --- the stack


@dataclass(frozen=True, slots=True)
class Stack:
    mongo_url: str
    gateway: str
    products: list[str]  # the products instances' URLs (internal routes are not behind nginx)
    cluster: Postgres | None
    sessions: dict[int, str]  # each peer's session id (its pid) to its kind: users, postgres...


def start_stack(
    state: Path, args: argparse.Namespace, env: Mapping[str, str], stop: contextlib.ExitStack
) -> Stack:
    """Start every peer, each stopped by `stop`."""
    sessions: dict[int, str] = {}

    def started(peer: Peer) -> Peer:
        stop.callback(peer.stop)
        peer.start(timeout=120)
        assert peer.process is not None
        sessions[peer.process.pid] = peer.name.split("-")[0]
        return peer

    mongo = [
        started(peer)
        for peer in peers.mongo(
            state, peers.free_port(), durable=False, storage=peers.Backend(args.backend)
        )
    ]
    cluster = next((peer for peer in mongo if isinstance(peer, Postgres)), None)
    mongo_url = f"mongodb://127.0.0.1:{mongo[-1].port}/"
    nats = started(peers.nats(state, peers.free_port()))
    # Stock movements are indexed for search off the request path: part of the load, as in
    # production. With --no-search nothing listens on its port: the catalog serves without it,
    # and the indexer retries each movement (cheaper, and noisy logs).
    search_port = peers.free_port()
    if not args.no_search:
        started(peers.opensearch(state, search_port))
    common = {
        **env,
        "MONGO_URL": mongo_url,
        "NATS_URL": f"nats://127.0.0.1:{nats.port}",
        "LOG_LEVEL": "WARNING",
        "OPENSEARCH_URL": f"http://127.0.0.1:{search_port}",
    }
    instances: dict[str, list[str]] = {}
    for name in ("users", "products"):
        extra = {"MONGO_DATABASE": name, "SERVICE_NAME": name}
        if name == "products":
            # Straight to a users instance: the gateway starts after the services it routes to.
            extra["JWKS_URL"] = f"http://{instances['users'][0]}/api/v1/auth/jwks"
        for number in (1, 2):
            port = peers.free_port()
            peer = started(
                Peer(
                    name=f"{name}-{number}",
                    argv=[str(ROOT / ".venv" / "bin" / name)],
                    log_path=state / "logs" / f"{name}-{number}.log",
                    env={**common, **extra, "PORT": str(port)},
                    port=port,
                    ready_url=f"http://127.0.0.1:{port}/readyz",
                )
            )
            instances.setdefault(name, []).append(f"127.0.0.1:{peer.port}")
    nginx = started(gateway.peer(state / "nginx", peers.free_port(), instances))
    return Stack(
        mongo_url,
        f"http://127.0.0.1:{nginx.port}",
        [f"http://{address}" for address in instances["products"]],
        cluster,
        sessions,
    )


def cpu_seconds(sessions: Mapping[int, str]) -> dict[str, float]:
    """CPU time each kind of peer used so far: the processes of its session (nginx's workers,
    FerretDB's pipe) and their children (PostgreSQL's backends, which lead sessions of their own)."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = collections.defaultdict(float)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        # After the command: state, ppid, pgrp, session, ..., utime and stime (fields 14 and 15).
        kind = sessions.get(int(fields[3])) or sessions.get(int(fields[1]))
        if kind is not None:
            used[kind] += (int(fields[11]) + int(fields[12])) / tick
    return used


# --- full-table reads (PostgreSQL's own counters)

# FerretDB names a collection's table `<collection>_<8 hex digits>` in the database's schema.
TABLE_SCANS = """
SELECT schemaname || '.' || regexp_replace(relname, '_[0-9a-f]{8}$', ''), seq_scan, seq_tup_read
FROM pg_stat_user_tables WHERE schemaname IN ('users', 'products')
"""


def table_scans(cluster: Postgres | None) -> dict[str, tuple[int, int]]:
    """Sequential scans and the rows they read, per collection, so far."""
    if cluster is None:
        return {}
    found = {}
    for line in cluster.sql(peers.FERRETDB_DATABASE, TABLE_SCANS).splitlines():
        name, scans, rows = line.split("|")
        found[name] = (int(scans), int(rows))
    return found


def scans_since(cluster: Postgres | None, before: dict[str, tuple[int, int]]) -> list[str]:
    """The collections most read in full since `before`, as "name: scans x rows" (top five)."""
    grown = sorted(
        (
            (rows - before.get(name, (0, 0))[1], scans - before.get(name, (0, 0))[0], name)
            for name, (scans, rows) in table_scans(cluster).items()
        ),
        reverse=True,
    )
    return [f"{name} {scans:,} scans, {rows:,} rows" for rows, scans, name in grown[:5] if rows]


# --- the run


@dataclass(frozen=True, slots=True)
class Unmeasured:
    """What no measurement touched yet: cold on every instance."""

    users: Pool[int]
    products: Pool[str]
    skus: Pool[str]


async def grow(
    loader: Loader,
    size: Size,
    unmeasured: Unmeasured,
    args: argparse.Namespace,
    cluster: Postgres | None,
    *,
    first_large: bool,
) -> tuple[str, str]:
    """Load up to `size`; how the ledger grew, and how long each part took."""
    took: list[str] = []

    async def timed(part: str, work: Awaitable[T]) -> T:
        started = time.monotonic()
        done = await work
        took.append(f"{part} {time.monotonic() - started:.0f} s")
        return done

    unmeasured.users.add(await timed("users", loader.users_to(size.users)))
    before = len(loader.visible)
    await timed("products", loader.products_to(size.products))
    unmeasured.products.add(loader.visible[before:])
    if size.events == 0:
        # Only the SKUs the measurements need, each with a history as deep past its snapshot as
        # on the large databases (0 to SNAPSHOT_EVERY - 1 events to fold): what differs is the
        # size of the collection alone.
        skus, length = loader.unstocked(2 * args.requests + 2), 2 * SNAPSHOT_EVERY
        described = f"{len(skus):,} SKUs x {length} events, the last snapshot 0-{SNAPSHOT_EVERY - 1} events behind"
    else:
        length = args.history
        skus = loader.unstocked(max(0, (size.events - loader.events) // length))
        snapshots = (
            "no snapshots"
            if args.no_snapshots
            else f"the last snapshot 0-{SNAPSHOT_EVERY - 1} events behind"
        )
        described = f"+{len(skus):,} SKUs x {length} events, {snapshots}"
        if first_large:
            unmeasured.skus.clear()  # from here on, only long histories are measured
    await timed("ledger", loader.stock(skus, length))
    unmeasured.skus.add(skus)
    if cluster is not None:
        # What autovacuum does shortly after a bulk load, done now so it is not mid-run.
        await timed("ANALYZE", asyncio.to_thread(cluster.sql, peers.FERRETDB_DATABASE, "ANALYZE"))
    return described, ", ".join(took)


@dataclass(frozen=True, slots=True)
class Phase:
    size: Size
    ledger: str  # how the ledger was loaded, for the sizes line
    loading: str  # how long loading took
    results: dict[str, Figures]
    scans: list[str]  # the collections PostgreSQL read in full most while measuring


async def run(args: argparse.Namespace, state: Path, stop: contextlib.ExitStack) -> list[Phase]:
    env = {
        **read_env_file(ROOT / ".env.example"),
        "PASSWORD_HASH_COST": str(args.hash_cost),
    }
    stack = start_stack(state, args, env, stop)
    cluster = stack.cluster
    rng = random.Random(20261124)
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        stack.mongo_url, tz_aware=True, timeoutMS=600_000
    )
    hasher = Hasher(env["PASSWORD_PEPPER"], args.hash_cost)
    loader = Loader(
        client["users"], client["products"], await hasher.hash(PASSWORD), rng, not args.no_snapshots
    )
    unmeasured = Unmeasured(Pool[int](rng), Pool[str](rng), Pool[str](rng))
    sizes = [Size("small", args.small_users, args.small_products, 0)] + [
        Size(f"{events:,} events", args.users, args.products, events) for events in args.events
    ]
    phases: list[Phase] = []
    # Past nginx's 60 s proxy timeout, so a slow answer through it comes back as its 504.
    timeout = aiohttp.ClientTimeout(total=75)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        bench = Bench(session, stack, SigningKeys(env["SIGNING_KEYS"]), env, args)
        base = stack.gateway
        _, made = await bench.call(
            "POST",
            f"{base}/api/v1/categories",
            bench.token("bench-admin", "admin"),
            {"slug": "growth-bench", "name": "Growth bench", "parent_id": None},
        )
        if made is None or made.status != 201:
            raise SystemExit(f"could not create the category to write to: {made}")
        bench.category = ((await made.json())["id"], made.headers["ETag"])
        for number, size in enumerate(sizes):
            described, took = await grow(
                loader, size, unmeasured, args, cluster, first_large=number == 1
            )
            loaded = Size(size.name, len(loader.user_ids), len(loader.product_ids), loader.events)
            print(f"{size.name}: loaded ({took}); measuring...", flush=True)
            await asyncio.sleep(SETTLE)
            before = table_scans(cluster)
            results = await measure_phase(bench, loader, unmeasured)
            await asyncio.sleep(2)  # backends flush their statistics within a second or so
            phases.append(Phase(loaded, described, took, results, scans_since(cluster, before)))
    await client.close()
    return phases


def report(args: argparse.Namespace, phases: list[Phase]) -> None:
    small = phases[0]
    print()
    print(
        f"bench:growth on FerretDB/{args.backend}, 2 instances per service behind nginx, "
        f"{args.concurrency} concurrent requests ({args.requests} per operation; {args.serial} "
        f"logins, 2 at a time, at most {LOGIN_RATE:.0f}/s; {args.serial} category writes, 1 at a "
        "time), "
        f"bcrypt cost {args.hash_cost}"
    )
    for phase in phases:
        size = phase.size
        print(
            f"  {size.name:>18}: {size.users:>9,} users {size.products:>8,} products "
            f"{size.events:>11,} ledger events ({phase.ledger}); loaded in {phase.loading}"
        )
    print()
    header = f"{'operation':40} {'small p50/p99 ms':>18}"
    for phase in phases[1:]:
        header += f" {phase.size.name + ' p50/p99':>26} {'x small':>11}"
    print(header)
    for name, figures in small.results.items():
        row = f"{name:40} {pair(figures):>18}"
        for phase in phases[1:]:
            large = phase.results[name]
            p50 = large.percentile(0.5) / figures.percentile(0.5)
            p99 = large.percentile(0.99) / figures.percentile(0.99)
            verdict = "" if name.endswith("healthz") or max(p50, p99) <= 2 else " !"
            row += f" {pair(large):>26} {p50:5.1f}/{p99:<4.1f}{verdict:2}"
        print(row)
    print("'!': a p50 or p99 over 2x the small database's")
    print()
    print(
        f"{'requests/s (client CPU ms per request, failures)':58}"
        + "".join(f" {p.size.name:>22}" for p in phases)
    )
    for name in small.results:
        cells = ""
        for phase in phases:
            f = phase.results[name]
            cells += f" {f.rps:8.0f} ({f.cpu * 1000 / len(f.latencies):4.1f}, {f.failures:3d})"
        print(f"{name:58}{cells}")
    report_servers(phases)
    print()
    for phase in phases:
        share = phase.results[COLD_READ].rps / phase.results[HEALTHZ].rps
        verdict = "meets" if share >= 0.25 else "misses"
        print(
            f"{phase.size.name}: a cold product read reaches {share:.0%} of /healthz's requests/s "
            f"through nginx ({verdict} the 25% target)"
        )
    for phase in phases:
        for name, figures in phase.results.items():
            if figures.failures:
                answers = dict(sorted(figures.statuses.items()))
                print(
                    f"  unexpected answers at {phase.size.name}, {name}: {answers} (0: no answer)"
                )
    if any(phase.scans for phase in phases):
        print()
        print("collections PostgreSQL read in full most while measuring (FerretDB filters in Go):")
        for phase in phases:
            print(f"  {phase.size.name}: " + "; ".join(phase.scans))


def report_servers(phases: list[Phase]) -> None:
    """Where each operation's CPU went, on the small database and on the largest."""
    kinds = [kind for kind in PEER_KINDS if kind in phases[0].results[HEALTHZ].servers]
    for phase in phases[:1] + phases[1:][-1:]:
        print()
        print(
            f"server CPU ms per request at {phase.size.name}, by process "
            "(whatever ran meanwhile included: sweepers, relays, the indexer)"
        )
        print(f"{'operation':40}" + "".join(f" {kind:>10}" for kind in kinds))
        for name, figures in phase.results.items():
            spent = [
                figures.servers.get(kind, 0.0) * 1000 / len(figures.latencies) for kind in kinds
            ]
            print(f"{name:40}" + "".join(f" {ms:10.2f}" for ms in spent))


def pair(figures: Figures) -> str:
    return f"{figures.percentile(0.5):.1f}/{figures.percentile(0.99):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=list(peers.Backend), default=peers.Backend.POSTGRESQL)
    parser.add_argument(
        "--events",
        type=lambda text: [int(n) for n in text.replace("_", "").split(",")],
        default=[100_000, 1_000_000],
        help="ledger sizes to measure at, comma-separated (default 100000,1000000)",
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument("--small-users", type=int, default=1_000)
    parser.add_argument("--small-products", type=int, default=1_000)
    parser.add_argument("--history", type=int, default=100, help="events per SKU loaded")
    parser.add_argument("--requests", type=int, default=300, help="per operation and size")
    parser.add_argument(
        "--serial",
        type=int,
        default=100,
        help="logins and category writes per size (bcrypt-bound and one stream: few at a time)",
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--hash-cost", type=int, help="bcrypt cost (default: .env.example's)")
    parser.add_argument(
        "--no-snapshots",
        action="store_true",
        help="load no stock snapshots (a cold SKU folds its whole history)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: small sizes and counts (about 2 minutes)"
    )
    parser.add_argument(
        "--no-search", action="store_true", help="start no OpenSearch (saves about 450 MB)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (logs, data)"
    )
    args = parser.parse_args()
    if args.hash_cost is None:
        args.hash_cost = int(read_env_file(ROOT / ".env.example")["PASSWORD_HASH_COST"])
    if args.quick:
        args.events, args.users, args.products = [10_000, 20_000], 3_000, 2_000
        args.small_users, args.small_products = 200, 300
        args.history, args.requests, args.serial = 20, 60, 16
    # The tools built by ./task install, also when this runs outside the Taskfile.
    os.environ["PATH"] = f"{ROOT / '.tools' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    # The PostgreSQL cluster, being ephemeral, keeps its data elsewhere and deletes it on stop.
    state = Path(tempfile.mkdtemp(prefix="bench-growth-"))
    finished = False
    try:
        with contextlib.ExitStack() as stop:
            phases = asyncio.run(run(args, state, stop))
        report(args, phases)
        finished = True
    except PeerFailed as error:
        print(error, file=sys.stderr)
    finally:
        if args.keep:
            print(f"kept {state}")
        else:
            # The data goes (a gigabyte at the default sizes); the logs stay when something failed.
            if finished:
                shutil.rmtree(state, ignore_errors=True)
            else:
                for part in state.iterdir():
                    if part.name != "logs":
                        shutil.rmtree(part, ignore_errors=True)
                print(f"logs kept in {state / 'logs'}", file=sys.stderr)
    if not finished:
        sys.exit(1)


if __name__ == "__main__":
    main()
