"""Password reset requests: throttled, recorded and answered at once; the lookup and the mail after.

The answer must take the same time whether or not the account exists, so the request does only
what is the same for both (the throttle, one insert) and the rest runs after the answer. The
record is the work's outbox: deleted once carried out, so work that failed, or died with its
instance, is carried out by the retry loop of any instance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from shopkit import clock
from shopkit.ids import new_id
from users import accounts
from users.deps import Collaborators

log = logging.getLogger("users.resets")
# A request still recorded this long after it was answered failed, or its instance died.
RETRY_AFTER = timedelta(seconds=30)
RETRY_INTERVAL = 30.0
# Past the link's own lifetime a mail would be useless: the request is dropped.
GIVE_UP_AFTER = accounts.RESET_TTL
DRAIN_TIMEOUT = 5.0


async def ask(users: Collaborators, email: str, client: str) -> tuple[str, str]:
    """Throttle and record a request; its id and the normalised email, for `carry_out`."""
    email = accounts.normalise_email(email)
    await users.reset_requests.attempt(email, client)
    request_id = new_id()
    await users.store.insert_reset_request(request_id, email)
    return request_id, email


async def carry_out(users: Collaborators, request_id: str, email: str) -> None:
    await accounts.request_password_reset(users, email, request_id)
    await users.store.reset_request_done(request_id)


async def retry_stale(users: Collaborators) -> float | None:
    """One pass of the retry loop: carry out what is left, or drop what is too old to matter."""
    now = clock.now()
    for request in await users.store.unfinished_reset_requests(now - RETRY_AFTER):
        if request.at < now - GIVE_UP_AFTER:
            log.warning("dropping password reset request %s, unsent for too long", request.id)
            await users.store.reset_request_done(request.id)
        else:
            await carry_out(users, request.id, request.email)
    return None


class AfterAnswer:
    """Work a request starts and does not wait for, supervised: each task is held until it ends
    (the event loop keeps only weak references), a failure is logged, and what is still running
    at shutdown gets a moment to finish."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._logged(name, work), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _logged(name: str, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception:
            log.exception("%s failed; the retry loop will carry it out", name)

    async def drain(self) -> None:
        if not self._tasks:
            return
        _, running = await asyncio.wait(set(self._tasks), timeout=DRAIN_TIMEOUT)
        for task in running:  # its record stays: another instance's retry loop carries it out
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
