"""ECS JSON log lines on stdout, carrying the service name, the trace and span ids, the request id,
the user id and the event being handled."""

from __future__ import annotations

import logging
import sys

import ecs_logging

from shopkit import context

__all__ = ["configure"]


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        fields["service.name"] = self.service
        span = context.span.get()
        if span is not None:
            fields["trace.id"] = span.trace_id
            fields["span.id"] = span.span_id
        if request_id := context.request_id.get():
            fields["http.request.id"] = request_id
        if user := context.user_id.get():
            fields["user.id"] = user
        if event_id := context.event_id.get():
            fields["event.id"] = event_id
        return True


def configure(service: str, level: str = "INFO") -> None:
    """Route every logger to one ECS JSON handler on stdout (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_shop", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler._shop = True  # type: ignore[attr-defined]
    handler.setFormatter(ecs_logging.StdlibFormatter(exclude_fields=["log.original", "process"]))
    handler.addFilter(_ContextFilter(service))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # One line per request comes from our middleware; aiohttp's access log would double it.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
