"""Supervised background loops: one failure is logged and retried, never silently ends the loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

__all__ = ["background"]

log = logging.getLogger("shopkit.tasks")


async def run_forever(
    name: str,
    step: Callable[[], Awaitable[float | None]],
    interval: float,
    *,
    stop: asyncio.Event | None = None,
) -> None:
    """Call `step` repeatedly; it may return how long to sleep before the next call. With `stop`,
    the loop also ends once it is set, after the step under way (a graceful end)."""
    task = asyncio.current_task()
    while stop is None or not stop.is_set():
        try:
            pause = await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            if task is None or not task.cancelling():
                log.exception("background task %s failed; retrying", name)
            pause = None
        # Some libraries swallow a cancellation (Python 3.11's wait_for can, bpo-42130); a loop
        # that kept going would block the app's shutdown forever, so we check for it ourselves.
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        await asyncio.sleep(interval if pause is None else pause)


def background(
    name: str, step: Callable[[web.Application], Awaitable[float | None]], interval: float
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx entry that runs `step(app)` in a loop while the app lives."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run_forever(name, lambda: step(app), interval), name=name)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return context
