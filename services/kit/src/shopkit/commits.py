"""What follows a committed write: best-effort steps, bounded in time, logged and counted, never raised.

Once a write's commit point has passed (the event appended, the account inserted), the answer must
report it: a 503 there makes the client retry a write that happened, and the retry meets a 412 or a
409. So the steps after it (a projection, a cache invalidation, the rest of a registration) run
through `AfterCommit`, which lets no failure reach the client; each of them must have a repair that
finishes it later (the relay's `before_publish`, a background catch-up).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from prometheus_client import Counter

from shopkit.metrics import Metrics

__all__ = ["STEP_SECONDS", "AfterCommit"]

log = logging.getLogger("shopkit.commits")
STEP_SECONDS = 2.0
"""How long one follow-up may delay the answer: less than the database's own timeout, so a
client that waits on a slow database hears of its commit before giving up."""


class AfterCommit:
    """Runs follow-ups of committed writes; `metrics` counts the failed ones by step."""

    def __init__(
        self, metrics: Metrics | None = None, service: str = "", timeout: float = STEP_SECONDS
    ) -> None:
        self._timeout, self._service = timeout, service
        self._failures: Counter | None = None
        if metrics is not None:
            self._failures = Counter(
                "after_commit_failures",
                "Follow-ups of committed writes that failed, left for their repair",
                ["service", "step"],
                registry=metrics.registry,
            )

    async def __call__(self, step: str, follow_up: Awaitable[object]) -> bool:
        """Await `follow_up` for at most the timeout; whether it completed."""
        try:
            async with asyncio.timeout(self._timeout):
                await follow_up
        except Exception:
            # Whatever went wrong (a slow or lost database, a bug), the write stands: the answer
            # reports it, and the step's repair finishes what was left.
            log.warning("%s failed after a commit; left for its repair", step, exc_info=True)
            if self._failures is not None:
                self._failures.labels(self._service, step).inc()
            return False
        return True
