"""UTC time and its RFC 3339 form, the only timestamps the platform speaks."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["now", "rfc3339"]


def now() -> datetime:
    """The current UTC time, to the millisecond: BSON dates hold milliseconds, so a stored moment
    reads back equal to the one written."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:  # stored datetimes come back naive when a client is not tz-aware
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
