"""A process-local read cache whose entries every instance drops when any instance changes the source.

Invalidations travel on core NATS (`cache.<service>.<name>`), outside the JetStream streams: they are
hints, not events. A missed one (a broker outage) is bounded by the entries' time to live. A read that
raced with an invalidation of its key does not fill the cache: `put` needs the epoch seen before the
read. A writer that knows the new value keeps it (`replace`): the other instances drop theirs, and
its own broadcast, echoed back by the broker, is recognised and ignored.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

__all__ = ["Cache"]

V = TypeVar("V")
log = logging.getLogger("shopkit.cache")
FLUSH_SECONDS = 1


class Cache(Generic[V]):
    def __init__(self, name: str, ttl: float, size: int = 10_000) -> None:
        self.name, self._ttl, self._size = name, ttl, size
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()
        # Drops are numbered; each key remembers its last. A fill is refused only when its own key
        # was dropped since the read began, so a busy cache of many keys still fills.
        self._epoch = 0
        self._dropped: OrderedDict[str, int] = OrderedDict()
        self._forgotten = 0  # the newest drop no longer remembered per key
        self._origin = uuid.uuid4().hex[:12]
        self._nats: NatsClient | None = None
        self._subject = ""
        self._subscription: Subscription | None = None

    async def attach(self, connection: NatsClient, service: str) -> None:
        self._nats, self._subject = connection, f"cache.{service}.{self.name}"

        async def dropped(message: Msg) -> None:
            origin, _, key = message.data.decode().partition(" ")
            if origin != self._origin:
                self._drop(key)

        self._subscription = await connection.subscribe(self._subject, cb=dropped)

    async def detach(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None

    def epoch(self) -> int:
        """Take this before reading the source; hand it to `put` afterwards."""
        return self._epoch

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def get_or_load(self, key: str, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The cached value, else what `load()` reads from the source (cached unless it was
        invalidated during the read; None, for a missing entry, is never cached)."""
        found = self.get(key)
        if found is not None:
            return found
        epoch = self.epoch()
        found = await load()
        if found is not None:
            self.put(key, found, epoch)
        return found

    def put(self, key: str, value: V, epoch: int) -> None:
        if self._dropped_since(key, epoch):
            return  # the key changed while we were reading: this value may already be stale
        self._store(key, value)

    def _dropped_since(self, key: str, epoch: int) -> bool:
        return self._dropped.get(key, 0) > epoch or self._forgotten > epoch

    async def invalidate(self, key: str) -> None:
        """Drop `key` here at once and tell the other instances to drop it too."""
        self._drop(key)
        await self._broadcast(key)

    async def replace(
        self, key: str, value: V, epoch: int | None = None, *, confirm: bool = True
    ) -> bool:
        """Keep `value`, just written to the source, here, and tell the other instances to drop
        their copy: the writer's next read needs no trip to the source.

        `epoch`, taken before the write: if another instance dropped the key since, its write may
        be newer than this one, so this value is not kept (only the drop is passed on).
        `confirm=False` leaves the broadcast to the client's own flusher (microseconds later,
        several together) instead of a round trip to the broker per write: for data whose
        client the gateway sends back to this same instance (see `affinity` in the registry).
        Whether the value was kept."""
        overtaken = epoch is not None and self._dropped_since(key, epoch)
        self._drop(key)
        if not overtaken:
            self._store(key, value)
        await self._broadcast(key, confirm=confirm)
        return not overtaken

    async def _broadcast(self, key: str, *, confirm: bool = True) -> None:
        if self._nats is None:
            return
        try:
            await self._nats.publish(self._subject, f"{self._origin} {key}".encode())
            if confirm:
                # Sent, not buffered, before the write is answered: the client's next read, on
                # any instance, comes after the broker has passed the invalidation on.
                await self._nats.flush(timeout=FLUSH_SECONDS)
        except (nats.errors.Error, TimeoutError):
            log.warning("could not broadcast a cache invalidation; peers expire it by TTL")

    def _store(self, key: str, value: V) -> None:
        self._entries[key] = (time.monotonic() + self._ttl, value)
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def _drop(self, key: str) -> None:
        self._epoch += 1
        self._entries.pop(key, None)
        self._dropped[key] = self._epoch
        self._dropped.move_to_end(key)
        if len(self._dropped) > self._size:
            _, self._forgotten = self._dropped.popitem(last=False)
