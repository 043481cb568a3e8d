"""Single-document inserts that run at the same time, sent to the database as one.

Each caller inserts one document and hears of its own outcome, as with `insert_one`: its duplicate
key, its other error, or success. Inserts that arrive while a batch is on its way wait for it and
go together in the next, as one unordered `insert_many`, so a burst costs one round trip and the
database parses one command, not one per insert (on FerretDB about a quarter of the CPU per
document, and a seventh of the driver's), while a lone insert waits for nothing.

FerretDB runs an `insert_many` as one PostgreSQL transaction: two instances sending overlapping
keys in opposite orders would deadlock (until PostgreSQL's one-second `deadlock_timeout` broke
it), so every batch goes in `_id` order. A batch refused as a whole (not a lost answer) is sent
again one document at a time, so one bad document never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    PyMongoError,
    WriteError,
)

__all__ = ["GroupedInserts"]

DUPLICATE_KEY = 11000
MAX_BATCH = 200
# Batches on their way at once. One: the next batch fills while it waits, and bigger batches
# are what saves the database's CPU (measured with two: 25% fewer adds per second in carts).
IN_FLIGHT = 1
# Longer than this in line and an insert is not sent at all: its caller hears a timeout, as from
# the driver's own (timeoutMS), and the append's retry rules apply.
MAX_WAIT_SECONDS = 5.0


@dataclass(slots=True)
class _Insert:
    document: Mapping[str, Any]
    outcome: asyncio.Future[None]
    queued_at: float = field(default_factory=time.monotonic)


class GroupedInserts:
    """Inserts into the collection `collection()` answers, asked at each send (so a test can
    swap in a collection that fails on purpose)."""

    def __init__(
        self, collection: Callable[[], AsyncCollection[Any]], max_batch: int = MAX_BATCH
    ) -> None:
        self._collection = collection
        self._max_batch = max_batch
        self._waiting: list[_Insert] = []
        self._senders: set[asyncio.Task[None]] = set()

    async def insert(self, document: Mapping[str, Any]) -> None:
        """Insert `document`; raises what `insert_one` would (DuplicateKeyError, a timeout...).

        A caller cancelled before its document was sent takes it back; once sent, like an
        `insert_one` cut short, the insert may land."""
        entry = _Insert(document, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        self._start_sender()
        try:
            await asyncio.shield(entry.outcome)
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self._waiting.remove(entry)
            raise

    def _start_sender(self) -> None:
        if self._waiting and len(self._senders) < IN_FLIGHT:
            # Serves many requests: none of their trace or user ids belongs on its lines.
            sender = asyncio.create_task(self._send_all(), context=contextvars.Context())
            self._senders.add(sender)
            # A sender cancelled before it ever ran leaves through here only.
            sender.add_done_callback(self._sender_ended)

    def _sender_ended(self, sender: asyncio.Task[None]) -> None:
        self._senders.discard(sender)
        self._start_sender()  # for anything queued meanwhile

    async def _send_all(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                await self._send(batch)
        except BaseException as error:
            # The sender itself failed (cancelled at shutdown, a bug): no caller may wait forever.
            unknown = ConnectionFailure(f"the insert's outcome is unknown: {error!r}")
            for entry in self._waiting:
                _settle(entry, unknown)
            self._waiting.clear()
            raise
        finally:
            # At once, not in a done-callback: an insert queued between this sender's last look
            # at the queue and that callback would otherwise find it still counted, and wait.
            current = asyncio.current_task()
            if current is not None:
                self._senders.discard(current)

    async def _send(self, batch: list[_Insert]) -> None:
        try:
            now = time.monotonic()
            late = [entry for entry in batch if now - entry.queued_at > MAX_WAIT_SECONDS]
            for entry in late:
                _settle(entry, ExecutionTimeout("waited too long to be sent; not sent", 50))
            ready = sorted(
                (entry for entry in batch if not entry.outcome.done()),
                key=lambda entry: str(entry.document.get("_id")),
            )
            if ready:
                for entry, failure in zip(ready, await self._insert(ready), strict=True):
                    _settle(entry, failure)
        except BaseException as error:
            unknown = ConnectionFailure(f"the insert's outcome is unknown: {error!r}")
            for entry in batch:
                _settle(entry, unknown)
            raise

    async def _insert(self, batch: list[_Insert]) -> list[BaseException | None]:
        """Each document's failure (None: inserted), in the batch's order."""
        collection = self._collection()
        if len(batch) == 1:
            return [await _one(collection, batch[0].document)]
        try:
            await collection.insert_many([dict(e.document) for e in batch], ordered=False)
        except BulkWriteError as error:
            failures: list[BaseException | None] = [None] * len(batch)
            for failed in error.details.get("writeErrors", []):
                code, message = failed.get("code"), failed.get("errmsg", "write error")
                kind = DuplicateKeyError if code == DUPLICATE_KEY else WriteError
                failures[int(failed["index"])] = kind(message, code, failed)
            if error.details.get("writeConcernErrors"):
                # Written, perhaps not durably: as good as a lost answer for the rest.
                lost = ConnectionFailure("write concern not satisfied")
                failures = [failure or lost for failure in failures]
            return failures
        except PyMongoError as error:
            if error.timeout or isinstance(error, ConnectionFailure):
                return [error] * len(batch)  # outcome unknown: each caller's retry decides
            # Refused as a whole (a document too large, say): each one on its own.
            return [await _one(collection, entry.document) for entry in batch]
        return [None] * len(batch)


async def _one(
    collection: AsyncCollection[Any], document: Mapping[str, Any]
) -> BaseException | None:
    try:
        await collection.insert_one(dict(document))
    except PyMongoError as error:
        return error
    return None


def _settle(entry: _Insert, failure: BaseException | None) -> None:
    if entry.outcome.done():
        return
    if failure is None:
        entry.outcome.set_result(None)
    else:
        entry.outcome.set_exception(failure)
        # Retrieved here: a caller that was cancelled must not leave "never retrieved" noise.
        entry.outcome.exception()
