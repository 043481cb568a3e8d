"""The users service's events: appended to its stream, relayed to JetStream by the kit's relay.

Registration writes its events inside the account document (one atomic insert) and flushes them to
the event stream right after; a sweeper flushes any a crash left behind. Event ids are derived from
what caused them, so a flush repeated after a crash appends nothing twice.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shopkit import clock
from shopkit.events import ConcurrencyConflict, EventStore
from users.store import UserStore

FLUSH_AFTER = timedelta(seconds=5)


def pending(event_id: str, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "type": event_type, "data": data}


class Outbox:
    def __init__(self, events: EventStore, store: UserStore) -> None:
        self._events, self._store = events, store

    async def emit(
        self, user_id: str, event_id: str, event_type: str, data: dict[str, Any]
    ) -> None:
        stream = f"user-{user_id}"
        while True:
            head = await self._events.head(stream)
            try:
                await self._events.append(stream, head, event_type, data, event_id=event_id)
                return
            except ConcurrencyConflict:
                continue  # another event of this user took the slot; take the next one

    async def flush(self, user_id: str, events: list[dict[str, Any]]) -> None:
        for event in events:
            await self.emit(user_id, event["id"], event["type"], event["data"])
        await self._store.clear_pending_events(user_id)

    async def flush_stale(self) -> None:
        for doc in await self._store.with_pending_events(clock.now() - FLUSH_AFTER):
            await self.flush(doc["_id"], doc["pending_events"])
