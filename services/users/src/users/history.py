"""The users service's events: appended to its stream, relayed to JetStream by the kit's relay.

Registration keeps its events with the registration record, inserted before the account, and
flushes them to the event stream right after; a sweeper finishes what a crash left behind. Event
ids are derived from what caused them, so a flush repeated after a crash appends nothing twice.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shopkit import clock
from shopkit.events import ConcurrencyConflict, EventStore
from users.store import UserStore

FLUSH_AFTER = timedelta(seconds=5)
# A registration whose account is still missing this long after it began died before inserting it
# (or lost its email): it is undone. Long, so a registration merely stalled is not undone under it.
ABANDON_AFTER = timedelta(hours=1)


def pending(event_id: str, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "type": event_type, "data": data}


class Outbox:
    def __init__(self, events: EventStore, store: UserStore) -> None:
        self._events, self._store = events, store

    async def emit(
        self,
        user_id: str,
        event_id: str,
        event_type: str,
        data: dict[str, Any],
        after_seq: int = 0,
    ) -> int:
        """Append at the end of the user's stream, wherever it is; the seq it landed at.

        These events record facts already decided, so any free slot will do: try the next one
        after `after_seq` and find the head only when it is taken (a galloping search, see `head`).
        """
        stream = f"user-{user_id}"
        seq = after_seq
        while True:
            try:
                event = await self._events.append(stream, seq, event_type, data, event_id=event_id)
                return event.seq
            except ConcurrencyConflict as conflict:
                # Another event of this user holds that slot: find the end from the winner on.
                taken = conflict.winner.seq if conflict.winner is not None else seq + 1
                seq = await self._events.head(stream, from_seq=taken)

    async def flush(self, user_id: str, events: list[dict[str, Any]]) -> None:
        seq = 0
        for event in events:
            seq = await self.emit(user_id, event["id"], event["type"], event["data"], seq)
        await self._store.registered(user_id)

    async def flush_stale(self) -> None:
        """Finish the registrations a crash left behind, or undo those that never had an account."""
        now = clock.now()
        async for registration, has_account in self._store.unfinished_registrations(
            now - FLUSH_AFTER
        ):
            if has_account:
                await self.flush(registration["_id"], registration["events"])
            elif registration["at"] < now - ABANDON_AFTER:
                await self._store.abandon_registration(registration["_id"])
