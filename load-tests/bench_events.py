"""Benchmark: the kit's event store and relay on a MongoDB-wire server, FerretDB first of all.

Appends 10,000 events across 500 streams through `EventStore.append` (relaying every 100, as the
relay does in steady state), then times loads and relay batches, and prints milliseconds per
operation. The relay publishes to a stub that acks at once unless --nats names a server, so the
figures are the database's. Not a test: a record of what the layout costs as a collection grows.
Usage: uv run python load-tests/bench_events.py mongodb://127.0.0.1:27017/ [--nats nats://...]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, cast

from pymongo import AsyncMongoClient

from shopkit import broker
from shopkit.events import EventStore, NewEvent, slot
from shopkit.relay import Relay

EVENTS = 10_000
STREAMS = 500
BATCH = 100
SAMPLES = 20


@dataclass(frozen=True, slots=True)
class Ack:
    duplicate: bool = False


class StubJetStream:
    """Acks every publish at once, so a relay batch measures the database work only."""

    async def publish(self, subject: str, payload: bytes, **options: Any) -> Ack:
        return Ack()


def stream(n: int) -> str:
    return f"order-{n:04d}"


def data(n: int) -> dict[str, Any]:
    # About the size of a real order event: a few lines and amounts.
    lines = [{"sku": f"SKU-{n % 97:05d}-{i}", "qty": 1 + i, "price": 1299 + i} for i in range(3)]
    return {"order_id": f"o-{n}", "lines": lines, "total": {"amount": 4197, "currency": "EUR"}}


async def timed(operation: Awaitable[object]) -> float:
    """Milliseconds the awaitable takes (a coroutine does nothing until awaited)."""
    started = time.perf_counter()
    await operation
    return (time.perf_counter() - started) * 1000


def summary(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(len(ordered) * 0.9)] if len(ordered) > 1 else ordered[0]
    return (
        f"{label:<52} median {statistics.median(samples):8.2f} ms   p90 {p90:8.2f} ms"
        f"   ({len(samples)} samples)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("url", help="the server, e.g. mongodb://127.0.0.1:27017/")
    parser.add_argument("--nats", help="publish to this NATS server instead of a stub")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's database")
    arguments = parser.parse_args()

    client: AsyncMongoClient[Any] = AsyncMongoClient(arguments.url, tz_aware=True)
    name = "bench_events_" + uuid.uuid4().hex[:8]
    db = client[name]
    nats_client = None
    if arguments.nats:
        import nats

        nats_client = await nats.connect(arguments.nats)
        js: Any = nats_client.jetstream()
        await broker.ensure_stream(js, "bench")
    else:
        js = StubJetStream()
    store = EventStore(db)
    await store.ensure_indexes()
    relay = Relay(store, cast(Any, js), "bench", batch=BATCH)
    rng = random.Random(7)
    try:
        # Round robin over the streams, as live traffic interleaves them: a stream's events end up
        # spread over the whole collection, not side by side.
        appends: list[float] = []
        batches: list[float] = []
        heads = [0] * STREAMS
        for n in range(EVENTS):
            s = n % STREAMS
            appends.append(await timed(store.append(stream(s), heads[s], "order.noted", data(n))))
            heads[s] += 1
            if (n + 1) % BATCH == 0:
                batches.append(await timed(relay.run_once()))
        assert await store.unpublished(limit=1) == [], "the relay left events queued"

        picked = rng.sample(range(STREAMS), SAMPLES)
        loads = [await timed(store.load(stream(s))) for s in picked]
        tails = [await timed(store.load(stream(s), after_seq=heads[s])) for s in picked]
        head_probes = [await timed(store.head(stream(s), from_seq=heads[s])) for s in picked]
        scans = [
            await timed(store.collection.find({"stream_id": stream(s)}).to_list())
            for s in picked[:5]
        ]

        updates = [
            await timed(
                store.collection.update_one({"_id": slot(stream(s), 1)}, {"$set": {"mark": 1}})
            )
            for s in picked[:5]
        ]

        seed = EventStore(db, "bench_seed")
        await seed.ensure_indexes()
        fresh = {
            f"sku-{s:04d}": [NewEvent("stock.received", data(i)) for i in range(20)]
            for s in range(STREAMS)
        }
        seeding = await timed(seed.append_batch(fresh))

        print(f"server {arguments.url}, {EVENTS} events across {STREAMS} streams")
        print(summary("append (relayed: intent, event, message)", appends))
        print(summary("  the first 1,000 appends", appends[:1000]))
        print(summary("  the last 1,000 appends (9,000+ events stored)", appends[-1000:]))
        print(summary(f"relay batch of {BATCH}", batches))
        print(summary("  the last 10 batches (9,000+ events stored)", batches[-10:]))
        print(summary("load of a 20-event stream", loads))
        print(summary("load after a projection's seq (nothing newer)", tails))
        print(summary("head from a projection's seq", head_probes))
        print(summary("reference: find({stream_id}) (the old load)", scans))
        print(summary("reference: update_one({_id}) (the old mark_published)", updates))
        print(
            f"{'append_batch of 10,000 events (seeding)':<52} {seeding / EVENTS:8.3f} ms per event"
        )
    finally:
        if not arguments.keep:
            await client.drop_database(name)
        await client.close()
        if nats_client is not None:
            await nats_client.close()


if __name__ == "__main__":
    asyncio.run(main())
