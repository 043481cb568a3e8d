"""Benchmark: how fast the outbox relay drains a backlog left by a broker outage, by backlog size.

Starts its own FerretDB (on PostgreSQL; SQLite with FERRETDB_BACKEND=sqlite) and NATS on free
loopback ports (or uses --mongo-url / --nats-url). For each size it queues that many events through
`EventStore.append` across --streams streams while no relay can publish (as during an outage), then
runs the relay's loop against JetStream until the outbox is empty, and prints the drain rate
overall, over the first and the last 1,000 messages, the slowest batch, and the batches that failed
(past the client's 5 s database timeout, for instance).
Usage: uv run python load-tests/bench_relay.py [--sizes 3000 15000] [--mongo-url ...]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import nats
import peers
from pymongo.errors import PyMongoError

from shopkit import broker, mongo
from shopkit.events import EventStore
from shopkit.relay import Relay

WINDOW = 1000


@dataclass
class Drain:
    """When each message went out (seconds since the relay could publish), and what failed."""

    published_at: list[float] = field(default_factory=list)
    batch_seconds: list[float] = field(default_factory=list)
    failed_batches: int = 0
    seconds: float = 0.0
    finished: bool = False

    def rate(self, first: int, last: int) -> float:
        """Messages per second from the `first`-th message out to the `last`-th."""
        span = self.published_at[last - 1] - (self.published_at[first - 1] if first else 0.0)
        return (last - first) / span if span > 0 else float("inf")


def payload(n: int) -> dict[str, Any]:
    # About the size of a real order event: a few lines and amounts.
    lines = [{"sku": f"SKU-{n % 97:05d}-{i}", "qty": 1 + i, "price": 1299 + i} for i in range(3)]
    return {"order_id": f"o-{n}", "lines": lines, "total": {"amount": 4197, "currency": "EUR"}}


async def queue(store: EventStore, size: int, streams: int, writers: int) -> None:
    """Append `size` events round robin over the streams; each writer owns its own streams."""

    async def writer(w: int) -> None:
        owned = range(w, streams, writers)
        heads = dict.fromkeys(owned, 0)
        for n in range(w, size, writers):
            s = owned[(n // writers) % len(owned)]
            await store.append(f"order-{s:05d}", heads[s], "order.noted", payload(n))
            heads[s] += 1

    await asyncio.gather(*(writer(w) for w in range(min(writers, streams))))


async def drain(relay: Relay, size: int, max_seconds: float) -> Drain:
    """Run the relay's loop (errors are retried, as the background task does) until all are out."""
    result = Drain()
    started = time.perf_counter()
    while len(result.published_at) < size:
        elapsed = time.perf_counter() - started
        if elapsed > max_seconds:
            break
        batch_started = time.perf_counter()
        try:
            published = await relay.run_once()
        except (PyMongoError, TimeoutError, nats.errors.Error):
            result.failed_batches += 1
            continue
        now = time.perf_counter()
        result.batch_seconds.append(now - batch_started)
        result.published_at += [now - started] * published
        if not published:
            await asyncio.sleep(0.05)
    result.seconds = time.perf_counter() - started
    result.finished = len(result.published_at) >= size
    return result


async def bench(args: argparse.Namespace) -> None:
    with ExitStack() as stack:
        mongo_url, nats_url = peers.database_and_broker(stack, args.mongo_url, args.nats_url)
        client = mongo.client(mongo_url)
        connection = await nats.connect(nats_url)
        js = connection.jetstream(timeout=5)
        print(
            f"relay drain after an outage: {args.streams} streams, batch {args.batch}, "
            f"FerretDB at {mongo_url}"
        )
        print(
            f"{'queued':>7} {'queue s':>8} {'drain s':>8} {'msg/s':>7} {'first 1k':>9}"
            f" {'last 1k':>8} {'slowest batch ms':>17} {'failed':>7}"
        )
        try:
            for size in args.sizes:
                name = "bench_relay_" + uuid.uuid4().hex[:8]
                service = "bench" + uuid.uuid4().hex[:8]
                store = EventStore(client[name])
                await store.ensure_indexes()
                await broker.ensure_stream(js, service)
                try:
                    queue_started = time.perf_counter()
                    await queue(store, size, args.streams, args.writers)
                    queued_in = time.perf_counter() - queue_started
                    relay = Relay(store, js, service, batch=args.batch)
                    result = await drain(relay, size, args.max_seconds)
                finally:
                    await client.drop_database(name)
                    await js.delete_stream(broker.stream_name(service))
                out = len(result.published_at)
                first = result.rate(0, min(WINDOW, out)) if out else 0.0
                last = result.rate(max(out - WINDOW, 0), out) if out else 0.0
                slowest = max(result.batch_seconds, default=0.0) * 1000
                note = "" if result.finished else f"  stopped after {args.max_seconds:.0f}s"
                print(
                    f"{size:>7} {queued_in:8.1f} {result.seconds:8.1f} {out / result.seconds:7.0f}"
                    f" {first:9.0f} {last:8.0f} {slowest:17.0f} {result.failed_batches:>7}{note}"
                )
        finally:
            await connection.close()
            await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 15000])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--mongo-url", default="")
    parser.add_argument("--nats-url", default="")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
