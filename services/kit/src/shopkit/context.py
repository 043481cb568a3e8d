"""Per-request context (request id, user id, trace span, event id) that logs and outbound calls
carry along."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from shopkit.traces import Span, parse

__all__ = ["event_id", "request_id", "scope", "span", "traceparent", "user_id"]

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id: ContextVar[str | None] = ContextVar("user_id", default=None)
span: ContextVar[Span | None] = ContextVar("span", default=None)
event_id: ContextVar[str | None] = ContextVar("event_id", default=None)


@contextlib.contextmanager
def scope(
    parent: str | None, *, request: str | None = None, event: str | None = None
) -> Iterator[Span]:
    """Do one unit of work (a request served, an event handled) as a new span: a child of the
    `traceparent` header `parent` when it is valid, else the first of a new trace. Within it, log
    lines carry its ids, and calls and events it starts carry its `traceparent`."""
    found = parse(parent)
    current = found.child() if found is not None else Span.start()
    span_token, request_token = span.set(current), request_id.set(request)
    user_token, event_token = user_id.set(None), event_id.set(event)
    try:
        yield current
    finally:
        span.reset(span_token)
        request_id.reset(request_token)
        user_id.reset(user_token)
        event_id.reset(event_token)


def traceparent() -> str | None:
    """The `traceparent` of the work under way, for the calls and events it starts; None outside
    any (a background job's own work)."""
    current = span.get()
    return current.traceparent if current is not None else None
