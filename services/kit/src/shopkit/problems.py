"""RFC 9457 problem details: every error a client sees is one of these, as application/problem+json."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from aiohttp import web

from shopkit.headers import RETRY_AFTER, WWW_AUTHENTICATE

__all__ = [
    "PROBLEM_JSON",
    "TYPE_BASE",
    "BadGateway",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "GatewayTimeout",
    "Gone",
    "MalformedJson",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "Problem",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
    "for_status",
]

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://shop.local/problems/"


class Problem(Exception):
    """A situation a client can understand; subclasses name the situation."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = dict(headers or {})
        self.extensions = extensions

    def body(self, instance: str, request_id: str | None) -> dict[str, Any]:
        document: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            **self.extensions,
        }
        if request_id:
            document["request_id"] = request_id
        if self.errors is not None:
            document["errors"] = self.errors
        return document

    def response(self, instance: str, request_id: str | None) -> web.Response:
        return web.Response(
            status=self.status,
            text=json.dumps(self.body(instance, request_id)),
            content_type=PROBLEM_JSON,
            headers=self.headers,
        )


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "Bad request"


class MalformedJson(BadRequest):
    slug, title = "malformed-json", "Malformed JSON body"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {WWW_AUTHENTICATE: 'Bearer realm="shop"'})
        super().__init__(detail, **kwargs)


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class MethodNotAllowed(Problem):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class Gone(Problem):
    """The resource existed and is gone for good: asking again will not bring it back."""

    status, slug, title = 410, "gone", "Gone"


class PreconditionFailed(Problem):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailed(Problem):
    """Per-field errors, at most `MAX_FIELD_ERRORS` of them echoed: a body of 50,000 unknown fields
    must not answer megabytes. `errors_omitted` says how many more there were."""

    status, slug, title = 422, "validation-failed", "Validation failed"

    def __init__(
        self, detail: str | None = None, *, errors: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if errors is not None:
            shown, count = _first_errors(errors, MAX_FIELD_ERRORS)
            omitted = _count_errors(errors) - count
            if omitted:
                kwargs["errors_omitted"] = omitted
                detail = f"{detail or self.title} ({omitted} more field errors not shown)"
            errors = shown
        super().__init__(detail, errors=errors, **kwargs)


MAX_FIELD_ERRORS = 20
# A field name is echoed as sent, so a long one is cut: the client knows the rest.
MAX_FIELD_NAME = 100


def _first_errors(errors: Any, room: int) -> tuple[Any, int]:
    """The first `room` field errors of `errors` (nested as marshmallow nests them), and how many."""
    if not isinstance(errors, Mapping):
        return errors, 1
    shown: dict[str, Any] = {}
    count = 0
    for name, error in errors.items():
        if count >= room:
            break
        shown[str(name)[:MAX_FIELD_NAME]], used = _first_errors(error, room - count)
        count += used
    return shown, count


def _count_errors(errors: Any) -> int:
    if not isinstance(errors, Mapping):
        return 1
    return sum(_count_errors(error) for error in errors.values())


class TooManyRequests(Problem):
    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={RETRY_AFTER: str(max(1, retry_after))})


class BadGateway(Problem):
    status, slug, title = 502, "bad-gateway", "Upstream service failed"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class GatewayTimeout(Problem):
    status, slug, title = 504, "gateway-timeout", "Upstream service timed out"


_BY_STATUS: dict[int, type[Problem]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        Gone,
        PreconditionFailed,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        BadGateway,
        ServiceUnavailable,
        GatewayTimeout,
    )
}


def for_status(status: int, detail: str | None = None) -> Problem:
    """The problem that best names an HTTP status raised by aiohttp itself (404 route, 413 body...)."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        problem = Problem(detail)
        problem.status = status  # type: ignore[misc]
        return problem
    return cls(detail)
