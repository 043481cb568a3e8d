"""Housekeeping of the users service: forgets sessions, links and login failures nothing needs now."""

from __future__ import annotations

from datetime import timedelta

from shopkit import clock
from users.deps import Users
from users.sessions import PURGE_BATCH

INTERVAL = 300.0
# How long an ended session stays listed in the database (for support) before it is forgotten.
ENDED_RETENTION = timedelta(days=1)


async def sweep(users: Users) -> float | None:
    """One pass; answers a short pause when a full batch suggests more is waiting."""
    now = clock.now()
    await users.store.purge_expired_tokens(now)
    purged = await users.families.purge(now - ENDED_RETENTION)
    return 1.0 if purged >= PURGE_BATCH else None
