"""The HTTP header names the platform reads or writes, each spelled once."""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALLOW",
    "AUTHORIZATION",
    "CACHE_CONTROL",
    "CART_TOKEN",
    "CONTENT_TYPE",
    "ETAG",
    "IDEMPOTENCY_KEY",
    "IDEMPOTENT_REPLAYED",
    "IF_MATCH",
    "IF_NONE_MATCH",
    "LAST_MODIFIED",
    "LOCATION",
    "REAL_IP",
    "REQUEST_ID",
    "RETRY_AFTER",
    "TRACEPARENT",
    "TRACERESPONSE",
    "VARY",
    "WWW_AUTHENTICATE",
]

ALLOW: Final = "Allow"
AUTHORIZATION: Final = "Authorization"
CACHE_CONTROL: Final = "Cache-Control"
CONTENT_TYPE: Final = "Content-Type"
ETAG: Final = "ETag"
IF_MATCH: Final = "If-Match"
IF_NONE_MATCH: Final = "If-None-Match"
LAST_MODIFIED: Final = "Last-Modified"
LOCATION: Final = "Location"
RETRY_AFTER: Final = "Retry-After"
VARY: Final = "Vary"
WWW_AUTHENTICATE: Final = "WWW-Authenticate"
# The platform's own: a client's retry key, the mark on a replayed answer, the id a request's log
# lines share, the client address nginx passes on, and a guest's cart.
IDEMPOTENCY_KEY: Final = "Idempotency-Key"
IDEMPOTENT_REPLAYED: Final = "Idempotent-Replayed"
REQUEST_ID: Final = "X-Request-ID"
# W3C Trace Context: the caller's span (Level 1), and the span that answered (Level 2).
TRACEPARENT: Final = "traceparent"
TRACERESPONSE: Final = "traceresponse"
REAL_IP: Final = "X-Real-IP"
# A guest's cart, which has no account to belong to.
CART_TOKEN: Final = "X-Cart-Token"
