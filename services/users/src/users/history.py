"""Each user's history: the facts about an account, appended to its stream `user-<id>`.

The kit's relay publishes them from there. Registration keeps its events with the registration
record, inserted before the account, and records them right after; a sweeper finishes what a
crash left behind. Event ids are derived from what caused them, so recording again after a crash
appends nothing twice.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shopkit import clock
from shopkit.events import EventStore, NewEvent, append_at_end
from users.store import UserStore

FINISH_AFTER = timedelta(seconds=5)
# A registration whose account is still missing this long after it began died before inserting it
# (or lost its email): it is undone. Long, so a registration merely stalled is not undone under it.
ABANDON_AFTER = timedelta(hours=1)


def pending(event_id: str, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "type": event_type, "data": data}


def session_revoked_id(session_id: str) -> str:
    """The id of a session's revocation fact: one per session, however often it is revoked."""
    return f"session-revoked-{session_id}"


class History:
    def __init__(self, events: EventStore, store: UserStore) -> None:
        self._events, self._store = events, store

    async def session_revoked(self, session_id: str) -> bool:
        """Whether the session's revocation was recorded (one read by the unique event id)."""
        return await self._events.find(session_revoked_id(session_id)) is not None

    async def record(
        self,
        user_id: str,
        event_id: str,
        event_type: str,
        data: dict[str, Any],
        after_seq: int = 0,
    ) -> int:
        """Append at the end of the user's stream, wherever it is; the seq it landed at.

        These events record facts already decided, so any free slot will do: try the next one
        after `after_seq` and find the head only when it is taken.
        """
        fact = NewEvent(event_type, data, id=event_id)
        event = await append_at_end(self._events, f"user-{user_id}", fact, after_seq=after_seq)
        return event.seq

    async def record_registration(self, user_id: str, events: list[dict[str, Any]]) -> None:
        seq = 0
        for event in events:
            seq = await self.record(user_id, event["id"], event["type"], event["data"], seq)
        await self._store.registered(user_id)

    async def finish_registrations(self) -> None:
        """Finish the registrations a crash left behind, or undo those that never had an account."""
        now = clock.now()
        async for registration in self._store.unfinished_registrations(now - FINISH_AFTER):
            if registration.has_account:
                await self.record_registration(registration.user_id, registration.events)
            elif registration.at < now - ABANDON_AFTER:
                await self._store.abandon_registration(registration.user_id)
