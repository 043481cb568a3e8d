"""Purges by day: what must go carries the UTC day after which it may, and sweeps delete day by day.

FerretDB v1 on PostgreSQL pushes down only top-level equality, so a purge by a range such as
`{"expires_at": {"$lt": now}}` reads the whole collection every sweep. Instead, a document that
must be purged carries `purge_on`, the UTC day (`"2026-12-03"`) after which it may go, computed when
it is written (`purge_on(moment)`), under an index (`ensure_index`). A sweep deletes by equality on
each day of a bounded window of past days, the last `WINDOW_DAYS` up to yesterday: every delete is
an indexed equality, so a sweep costs the documents it purges plus one index probe per day, however
large the collection. A document goes on the day after its `purge_on`: up to a day late, never early.

The trade-off: a day that has left the window is never looked at again. If nothing swept for longer
than the window (the service was down, or its sweeper kept failing), the documents of the days
missed stay. Clean them once with a range delete, which reads the collection whole one time:
`db.<collection>.deleteMany({purge_on: {$lt: "<the oldest day of the window>"}})` for each
collection that carries the field.

What must go within hours rather than days (an empty cart) carries the UTC hour instead
(`purge_on(moment, hourly=True)`, `"2026-12-03T14"`), and a sweep asked for `hours` looks at
that many past hours too, the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

__all__ = ["FIELD", "due", "ensure_index", "past_days", "past_hours", "purge", "purge_on"]

FIELD = "purge_on"
WINDOW_DAYS = 30


def purge_on(moment: datetime, *, hourly: bool = False) -> str:
    """The `purge_on` value of a document that may go once `moment` has passed: its UTC day, or
    its UTC hour (`hourly`)."""
    if moment.tzinfo is None:  # stored datetimes come back naive when a client is not tz-aware
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H") if hourly else moment.date().isoformat()


def past_days(now: datetime, window: int = WINDOW_DAYS) -> list[str]:
    """The days a sweep at `now` purges, oldest first: the `window` days before `now`'s UTC day."""
    today = datetime.fromisoformat(purge_on(now)).date()
    return [(today - timedelta(days=back)).isoformat() for back in range(window, 0, -1)]


def past_hours(now: datetime, window: int) -> list[str]:
    """The hours a sweep at `now` purges, oldest first: the `window` whole hours before `now`'s."""
    hour = datetime.fromisoformat(purge_on(now, hourly=True) + ":00+00:00")
    return [purge_on(hour - timedelta(hours=back), hourly=True) for back in range(window, 0, -1)]


async def ensure_index(collection: AsyncCollection[Any]) -> None:
    await collection.create_index(FIELD)


async def purge(
    collection: AsyncCollection[Any],
    now: datetime,
    window: int = WINDOW_DAYS,
    *,
    where: Mapping[str, Any] | None = None,
) -> int:
    """Delete the documents whose purge day has passed (within the window), of those `where`
    (top-level equalities) selects; how many went."""
    deleted = 0
    for day in past_days(now, window):
        deleted += (await collection.delete_many({**(where or {}), FIELD: day})).deleted_count
    return deleted


async def due(
    collection: AsyncCollection[Any], now: datetime, window: int = WINDOW_DAYS, *, hours: int = 0
) -> AsyncIterator[dict[str, Any]]:
    """The documents whose purge day (within the window) or hour (within the last `hours`) has
    passed, for purges that must do more than delete them (the caller deletes or reschedules
    each when done, so a sweep cut short resumes)."""
    for day in [*past_days(now, window), *past_hours(now, hours)]:
        # The day's documents are read before any is yielded, so the caller may delete as it goes.
        for document in await collection.find({FIELD: day}).to_list():
            yield document
