"""Answers shared for a moment: identical searches within `ttl` seconds cost the engine one query.

A storefront sends the same few searches and category lists over and over; the engine's own request
cache only keeps size=0 requests. Concurrent identical requests also share the query in flight, so
an expiry never sends a burst of duplicates to the engine. Failures are not kept. Freshness: a change
reaches results within the index refresh (1 s) plus `ttl`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Recent(Generic[V]):
    """Values by key for `ttl` seconds, at most `size` of them; callers must not mutate a value."""

    def __init__(self, ttl: float, size: int = 500) -> None:
        self._ttl, self._size = ttl, size
        self._entries: OrderedDict[Hashable, tuple[float, asyncio.Future[V]]] = OrderedDict()

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> V:
        if self._ttl <= 0:
            return await compute()
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            entry = (now + self._ttl, asyncio.ensure_future(compute()))
            # Read the outcome even when every caller left, so a failure is never "never retrieved".
            entry[1].add_done_callback(lambda done: done.cancelled() or done.exception())
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        future = entry[1]
        try:
            # Shielded: one caller going away must not cancel the query the others wait for.
            return await asyncio.shield(future)
        except Exception:
            if self._entries.get(key) is entry:
                del self._entries[key]
            raise
