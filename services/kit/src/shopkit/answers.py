"""JSON answers, encoded by orjson: on a hot read, encoding with the standard library costs more
than building the answer (about 30 µs for a ten-line cart against 2). Every service answers
through it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

__all__ = ["json_response"]


def json_response(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """`web.json_response`, faster: compact UTF-8 JSON, non-ASCII kept as is. Keys that are no
    strings (OpenAPI's status codes) are written as strings, as the standard library does."""
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        headers=headers,
        content_type="application/json",
    )
