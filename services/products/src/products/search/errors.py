"""The situations search answers with, as the kit's problem types."""

from __future__ import annotations

from typing import Any

from shopkit.headers import RETRY_AFTER
from shopkit.problems import ServiceUnavailable

RETRY_AFTER_SECONDS = 5


class SearchUnavailable(ServiceUnavailable):
    """The search engine is unreachable, overloaded or has no index; the catalog itself still works."""

    slug, title = "search-unavailable", "Search is unavailable"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {RETRY_AFTER: str(RETRY_AFTER_SECONDS)})
        super().__init__(detail, **kwargs)


class RebuildInProgress(Exception):
    """Another rebuild holds the `-next` alias (or a crashed one left it behind: rebuild with force)."""


class RebuildFailed(Exception):
    """The engine refused part of a bulk load; the half-built index is dropped, the live one untouched."""
