"""Per-request context (request id, user id) that logs and outbound calls carry along."""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["request_id", "user_id"]

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id: ContextVar[str | None] = ContextVar("user_id", default=None)
