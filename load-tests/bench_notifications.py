"""Benchmark: a promotional campaign to 10,000 opted-in customers, delivered to Mailpit.

Starts its own FerretDB (on PostgreSQL, or SQLite with FERRETDB_BACKEND=sqlite), NATS, Mailpit
(keeping every message), one users process (the JWKS staff tokens are verified against; the tokens
are signed here with .env.example's SIGNING_KEYS) and ONE notifications process (their console
scripts), on free loopback ports in a temporary folder. Seeds `--recipients` opted-in customers
straight into notifications' database, in the documents its store reads, creates a campaign and
sends it at `--rate`, and times from the send request until every message is in Mailpit.

Prints the messages per second delivered overall and over the best 5-second window (target: 200/s
at least), the campaign's counts as the service tells them, the notifications process's peak
memory (VmHWM; target: under 150 MB), the CPU seconds each program spent, and per email delivered
what PostgreSQL did in each of notifications' collections (index scans: FerretDB's reads by `_id`
or an indexed field, and the rows they read; an update is a read and a write).
Usage: ./task bench:notifications [-- --recipients 1000 --rate 1000 --dispatch-batch 40 --keep]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
from pymongo import AsyncMongoClient

from notifications.model import Channel, Topic
from notifications.store import NotificationStore
from shopkit import broker, clock
from shopkit.settings import read_env_file
from shopkit.testing import peers
from shopkit.testing.peers import Peer, PeerFailed, Postgres
from users.signing import SigningKeys

ROOT = Path(__file__).resolve().parents[1]
BATCH = 1000
WINDOW = 5.0  # seconds: the best window's width
POLL = 0.2  # seconds between two looks at Mailpit's count
STALL = 30.0  # seconds without a new message in Mailpit before the run gives up
STATS_FLUSH = 11.0  # seconds until PostgreSQL's counters include every backend's
HTML = (
    "<p>Hello {{ name }}, 20% off this week.</p>"
    "<p><a href='{{ unsubscribe_url }}'>Unsubscribe</a></p>"
)
TEXT = "Hello {{ name }}, 20% off this week.\nUnsubscribe: {{ unsubscribe_url }}\n"


@dataclass(slots=True)
class Stack:
    mongo_url: str
    mailpit: str  # Mailpit's API
    notifications: str
    notifications_pid: int
    cluster: Postgres | None  # None on SQLite
    sessions: dict[int, str] = field(default_factory=dict)  # a peer's session id to its name


@dataclass(slots=True)
class Delivered:
    """Mailpit's message count over time, from the send request on."""

    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds, messages)
    sent_at: float = 0.0  # seconds the send request took to answer
    finished: bool = False

    @property
    def seconds(self) -> float:
        return self.samples[-1][0] if self.samples else 0.0

    @property
    def count(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def first(self) -> float:
        """Seconds until the first message arrived."""
        return next((at for at, count in self.samples if count), float("nan"))

    def best_window(self) -> float:
        """The most messages per second over WINDOW seconds (the whole run when shorter)."""
        if not self.samples or self.seconds < WINDOW:
            return self.count / self.seconds if self.seconds else 0.0
        best, end = 0.0, 0
        for began, before in self.samples:
            while end < len(self.samples) and self.samples[end][0] - began < WINDOW:
                end += 1
            if end == len(self.samples):
                break
            at, count = self.samples[end]
            best = max(best, (count - before) / (at - began))
        return best


async def start_stack(
    state: Path, env: Mapping[str, str], args: argparse.Namespace, stop: contextlib.ExitStack
) -> Stack:
    """Start every peer, each stopped by `stop`."""
    sessions: dict[int, str] = {}

    def started(peer: Peer) -> Peer:
        stop.callback(peer.stop)
        peer.start(timeout=120)
        assert peer.process is not None
        sessions[peer.process.pid] = peer.name
        return peer

    mongo = [started(peer) for peer in peers.mongo(state, peers.free_port(), durable=False)]
    cluster = next((peer for peer in mongo if isinstance(peer, Postgres)), None)
    mongo_url = f"mongodb://127.0.0.1:{mongo[-1].port}/"
    nats_url = f"nats://127.0.0.1:{started(peers.nats(state, peers.free_port())).port}"
    await publishers_streams(nats_url)
    smtp_port, api_port = peers.free_port(), peers.free_port()
    started(peers.mailpit(state, smtp_port, api_port))
    common = {
        **env,
        "ENVIRONMENT": "local",
        "MONGO_URL": mongo_url,
        "NATS_URL": nats_url,
        "LOG_LEVEL": "WARNING",
    }
    users_port, notifications_port = peers.free_port(), peers.free_port()
    users_url = f"http://127.0.0.1:{users_port}"
    services = {
        "users": (users_port, {}),
        "notifications": (
            notifications_port,
            {
                "JWKS_URL": f"{users_url}/api/v1/auth/jwks",
                "USERS_URL": users_url,
                "SERVICE_CLIENT_SECRET": client_secret(env, "notifications"),
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(smtp_port),
                # The campaign says its rate; this is only the default.
                "CAMPAIGN_RATE": "10000",
                "DISPATCH_BATCH": str(args.dispatch_batch),
                "SMTP_CONNECTIONS": str(args.smtp_connections),
            },
        ),
    }
    pids = {}
    for name, (port, extra) in services.items():
        peer = started(
            Peer(
                name=name,
                argv=[str(ROOT / ".venv" / "bin" / name)],
                log_path=state / "logs" / f"{name}.log",
                env={
                    **common,
                    **extra,
                    "SERVICE_NAME": name,
                    "MONGO_DATABASE": name,
                    "PORT": str(port),
                },
                port=port,
                ready_url=f"http://127.0.0.1:{port}/readyz",
            )
        )
        assert peer.process is not None
        pids[name] = peer.process.pid
    return Stack(
        mongo_url,
        f"http://127.0.0.1:{api_port}",
        f"http://127.0.0.1:{notifications_port}",
        pids["notifications"],
        cluster,
        sessions,
    )


async def publishers_streams(nats_url: str) -> None:
    """The streams of the services notifications follows and this stack does not run, as their
    publishers create them in the stack: without its stream, each of notifications' consumers
    would retry its start every few seconds (an index creation each time) during the campaign."""
    connection = await nats.connect(nats_url)
    try:
        js = connection.jetstream(timeout=5)
        for service in ("orders", "payments", "products"):
            await broker.ensure_stream(js, service)
    finally:
        await connection.close()


def client_secret(env: Mapping[str, str], name: str) -> str:
    """The service's own client secret, as users knows it (SERVICE_CLIENTS)."""
    pairs = (item.partition(":") for item in env.get("SERVICE_CLIENTS", "").split(","))
    return {key: secret for key, _, secret in pairs}.get(name, "")


async def seed(mongo_url: str, count: int, tag: str) -> float:
    """`count` opted-in customers in notifications' database, as its store reads them (a
    recipient and a choice of promotions by email each), in `_id` order; the seconds it took."""
    began = time.monotonic()
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True, timeoutMS=120_000)
    db = client["notifications"]
    try:
        for start in range(0, count, BATCH):
            ids = [f"bench-{tag}-{n:07d}" for n in range(start, min(count, start + BATCH))]
            await db["recipients"].insert_many(
                [
                    {
                        "_id": user_id,
                        "email": f"{user_id}@bench.example.com",
                        "name": f"Customer {user_id[-7:]}",
                        "customer": True,
                    }
                    for user_id in ids
                ]
            )
            await db["choices"].insert_many(
                [
                    {
                        "_id": f"{user_id}:{Topic.PROMOTIONS.value}:{Channel.EMAIL.value}",
                        "user_id": user_id,
                        "topic": Topic.PROMOTIONS.value,
                        "channel": Channel.EMAIL.value,
                        "choice": f"{Topic.PROMOTIONS.value}.{Channel.EMAIL.value}",
                        "on": True,
                        "at": clock.now(),
                    }
                    for user_id in ids
                ]
            )
        # The documents above are the store's; if it reads them differently now, say so here
        # rather than measure a campaign to no one.
        audience = await NotificationStore(db).promotions_audience()
        if len(audience) != count:
            raise SystemExit(
                f"seeded {count} opted-in customers, the store's audience has {len(audience)}: "
                "update seed() to the documents NotificationStore reads"
            )
    finally:
        await client.close()
    return time.monotonic() - began


async def mailpit_total(session: aiohttp.ClientSession, api: str) -> int:
    async with session.get(f"{api}/api/v1/messages", params={"limit": "1"}) as response:
        response.raise_for_status()
        return int((await response.json())["total"])


async def campaign(
    session: aiohttp.ClientSession, stack: Stack, staff: Mapping[str, str], count: int, rate: int
) -> tuple[Delivered, dict[str, Any]]:
    """Create the campaign, send it, and follow Mailpit's count until all `count` arrived."""
    base = stack.notifications
    async with session.post(
        f"{base}/api/v1/promotions",
        json={
            "name": "Bench week",
            "subject": "20% off for you, {{ name }}",
            "html": HTML,
            "text": TEXT,
        },
        headers={**staff, "Idempotency-Key": uuid.uuid4().hex},
    ) as response:
        created = await response.json()
        if response.status != 201:
            raise SystemExit(f"creating the campaign answered {response.status}: {created}")
    already = await mailpit_total(session, stack.mailpit)
    delivered = Delivered()
    began = time.monotonic()
    async with session.post(
        f"{base}/api/v1/promotions/{created['id']}/send",
        json={"rate": rate},
        headers={**staff, "Idempotency-Key": uuid.uuid4().hex},
    ) as response:
        answer = await response.json()
        if response.status != 202:
            raise SystemExit(f"sending the campaign answered {response.status}: {answer}")
    delivered.sent_at = time.monotonic() - began
    last_change = began
    while True:
        now = time.monotonic()
        arrived = await mailpit_total(session, stack.mailpit) - already
        if not delivered.samples or arrived != delivered.count:
            last_change = now
        delivered.samples.append((now - began, arrived))
        if arrived >= count:
            delivered.finished = True
            break
        if now - last_change > STALL:
            break
        await asyncio.sleep(POLL)
    # The counts settle once the dispatcher recorded its last batch's outcomes.
    deadline = time.monotonic() + 30
    while True:
        async with session.get(f"{base}/api/v1/promotions/{created['id']}", headers=staff) as got:
            state = await got.json()
        if state.get("state") == "sent" or time.monotonic() > deadline:
            return delivered, state
        await asyncio.sleep(0.5)


def memory(pid: int) -> dict[str, int]:
    """The process's VmHWM (peak) and VmRSS (now), in kB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            found[name] = int(value.split()[0])
    return found


def cpu_seconds(sessions: Mapping[int, str]) -> dict[str, float]:
    """CPU time each kind of peer used so far: the processes of its session (FerretDB's pipe)
    and their children (PostgreSQL's backends, which lead sessions of their own)."""
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


# FerretDB names a collection's table `<collection>_<8 hex digits>` in the database's schema.
TABLE_ROWS = """
SELECT regexp_replace(relname, '_[0-9a-f]{8}$', ''), seq_scan, coalesce(idx_scan, 0),
       seq_tup_read + coalesce(idx_tup_fetch, 0), n_tup_ins, n_tup_upd, n_tup_del
FROM pg_stat_user_tables WHERE schemaname = 'notifications'
"""
ROW_COUNTERS = ("seq scans", "index scans", "rows read", "inserted", "updated", "deleted")


def table_rows(cluster: Postgres | None) -> dict[str, tuple[int, ...]]:
    """Per collection of notifications: PostgreSQL's scans, rows read and rows written so far."""
    if cluster is None:
        return {}
    found = {}
    for line in cluster.sql(peers.FERRETDB_DATABASE, TABLE_ROWS).splitlines():
        name, *counts = line.split("|")
        found[name] = tuple(int(count) for count in counts)
    return found


async def settled_rows(cluster: Postgres | None) -> dict[str, tuple[int, ...]]:
    """`table_rows` once every backend flushed its counts (an idle one flushes them after 10 s:
    PostgreSQL 15's PGSTAT_IDLE_INTERVAL)."""
    if cluster is not None:
        await asyncio.sleep(STATS_FLUSH)
    return table_rows(cluster)


async def run(args: argparse.Namespace, state: Path, stop: contextlib.ExitStack) -> bool:
    """Whether every message arrived."""
    env = read_env_file(ROOT / ".env.example")
    args.dispatch_batch = args.dispatch_batch or int(env["DISPATCH_BATCH"])
    args.smtp_connections = args.smtp_connections or int(env["SMTP_CONNECTIONS"])
    stack = await start_stack(state, env, args, stop)
    tag = uuid.uuid4().hex[:8]
    seeded_in = await seed(stack.mongo_url, args.recipients, tag)
    token = SigningKeys(env["SIGNING_KEYS"]).sign(
        subject="bench-staff",
        roles=("staff",),
        issuer=env["JWT_ISSUER"],
        audience=env["JWT_AUDIENCE"],
        ttl=3600,
        extra={"sid": "bench-notifications"},
    )
    staff = {"Authorization": f"Bearer {token}"}
    idle = memory(stack.notifications_pid)
    rows_before = await settled_rows(stack.cluster)
    before, cpu_before = cpu_seconds(stack.sessions), time.process_time()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        delivered, answer = await campaign(session, stack, staff, args.recipients, args.rate)
    spent = {
        name: value - before.get(name, 0.0) for name, value in cpu_seconds(stack.sessions).items()
    }
    spent["bench (this script)"] = time.process_time() - cpu_before
    peak = memory(stack.notifications_pid)
    rows_after = await settled_rows(stack.cluster)
    rows = {
        name: tuple(
            now - then
            for now, then in zip(counts, rows_before.get(name, (0,) * len(counts)), strict=True)
        )
        for name, counts in rows_after.items()
    }
    report(args, seeded_in, delivered, answer, idle, peak, spent)
    report_rows(rows, delivered.count)
    return delivered.finished


def report(
    args: argparse.Namespace,
    seeded_in: float,
    delivered: Delivered,
    answer: Mapping[str, Any],
    idle: Mapping[str, int],
    peak: Mapping[str, int],
    spent: Mapping[str, float],
) -> None:
    backend = peers.backend().value
    print()
    print(
        f"bench:notifications: 1 notifications process, FerretDB/{backend}, Mailpit; "
        f"{args.recipients:,} opted-in recipients seeded in {seeded_in:.1f} s, "
        f"campaign sent at rate {args.rate}/s; DISPATCH_BATCH={args.dispatch_batch}, "
        f"SMTP_CONNECTIONS={args.smtp_connections}"
    )
    rate = delivered.count / delivered.seconds if delivered.seconds else 0.0
    verdict = "meets" if delivered.finished and rate >= 200 else "misses"
    note = "" if delivered.finished else f"  (stalled: nothing new for {STALL:.0f} s; see logs)"
    print(f"  send request answered in   {delivered.sent_at * 1000:8.0f} ms")
    print(f"  first message in Mailpit   {delivered.first():8.2f} s")
    print(
        f"  in Mailpit                 {delivered.count:8,} of {args.recipients:,} "
        f"in {delivered.seconds:.1f} s{note}"
    )
    print(f"  emails per second          {rate:8.1f}  ({verdict} the 200/s target)")
    print(f"  best {WINDOW:.0f}-second window      {delivered.best_window():8.1f} /s")
    state = answer.get("state") or f"unread ({answer.get('status')} {answer.get('title')})"
    print(f"  campaign state, counts     {state}, {answer.get('counts')}")
    if not delivered.finished:
        # One known cause: an update command of 50 statements or more makes FerretDB v1 (its
        # PostgreSQL pool has 50 connections) wait for good, each statement's read holding its
        # connection until the command ends; the dispatcher sends one of DISPATCH_BATCH.
        print(
            "  a stall: FerretDB may be waiting for good (see its log); DISPATCH_BATCH of 50 or "
            "more does that (one update command of as many statements): try --dispatch-batch 40"
        )
    hwm = peak["VmHWM"] / 1024
    verdict = "meets" if hwm < 150 else "misses"
    print(
        f"  notifications memory       {hwm:8.1f} MB peak (VmHWM; {verdict} the 150 MB target), "
        f"{idle['VmRSS'] / 1024:.1f} MB before the campaign, {peak['VmRSS'] / 1024:.1f} MB after"
    )
    total = sum(value for value in spent.values() if value > 0)
    print(
        f"CPU seconds from the send request until all arrived, by program ({total:.1f} s in all):"
    )
    for name, value in sorted(spent.items(), key=lambda item: -item[1]):
        per = 1000 * value / delivered.count if delivered.count else float("nan")
        print(f"  {name:20} {value:7.1f} s  {100 * value / total:5.1f}%  {per:6.2f} ms per email")
    sys.stdout.flush()


def report_rows(rows: Mapping[str, tuple[int, ...]], emails: int) -> None:
    """What PostgreSQL did per email delivered, by collection (FerretDB runs each find_one by
    `_id` as an index scan; an update as a read, then a write)."""
    if not rows or not emails:
        return
    print("PostgreSQL per email delivered, by notifications' collection:")
    print(f"  {'collection':28}" + "".join(f" {name:>12}" for name in ROW_COUNTERS))
    for name, counts in sorted(rows.items(), key=lambda item: -sum(item[1])):
        if any(counts):
            print(f"  {name:28}" + "".join(f" {count / emails:12.2f}" for count in counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000, help="the campaign's messages per second")
    parser.add_argument(
        "--dispatch-batch", type=int, help="DISPATCH_BATCH (default: .env.example's)"
    )
    parser.add_argument(
        "--smtp-connections", type=int, help="SMTP_CONNECTIONS (default: .env.example's)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (logs, data)"
    )
    args = parser.parse_args()
    # The tools built by ./task install, also when this runs outside the Taskfile.
    os.environ["PATH"] = f"{ROOT / '.tools' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    # Stopped (by `timeout`, say), the peers are stopped too: the exit unwinds the ExitStack.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    state = Path(tempfile.mkdtemp(prefix="bench-notifications-"))
    finished = False
    try:
        with contextlib.ExitStack() as stop:
            finished = asyncio.run(run(args, state, stop))
    except PeerFailed as error:
        print(error, file=sys.stderr)
    finally:
        if args.keep or not finished:
            print(f"kept {state} (logs in {state / 'logs'})", file=sys.stderr)
        else:
            shutil.rmtree(state, ignore_errors=True)
    if not finished:
        sys.exit(1)


if __name__ == "__main__":
    main()
