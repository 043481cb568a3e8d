"""Housekeeping of the users service: forgets sessions, links and login failures nothing needs now."""

from __future__ import annotations

from shopkit import clock
from users.deps import Collaborators

INTERVAL = 300.0


async def sweep(users: Collaborators) -> float | None:
    """One pass: each purge deletes by its indexed day, so a pass costs what it forgets."""
    now = clock.now()
    await users.store.purge(now)
    await users.families.purge(now)
    return None
