"""Schemathesis hooks for tests/test_openapi_fuzz.py: requests as a real client would shape them."""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    # A client sends a fresh Idempotency-Key with each distinct request; the fuzzer reuses its
    # drawn keys with other bodies, which the service rightly refuses (422 idempotency-key-reused).
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    # A cursor is valid only as the API gave it out; no schema can say which opaque strings are.
    if case.query and "cursor" in case.query:
        del case.query["cursor"]
    return case
