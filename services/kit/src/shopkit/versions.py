"""Versions as ETags (`"v7"`) and the If-Match precondition a write checks them against."""

from __future__ import annotations

import re

from aiohttp import web

from shopkit.headers import IF_MATCH
from shopkit.problems import PreconditionFailed, Problem

__all__ = ["PreconditionRequired", "StaleVersion", "etag", "if_match"]

_TAG = re.compile(r'(?:W/)?"v([0-9]{1,15})"')


class StaleVersion(PreconditionFailed):
    slug, title = "stale-version", "The resource changed since you read it"


class PreconditionRequired(Problem):
    status, slug, title = 428, "precondition-required", "If-Match required"


def etag(version: int) -> str:
    return f'"v{version}"'


def if_match(request: web.Request, *, required: bool) -> int | None:
    """The version an `If-Match: "v7"` names; None when absent and not `required` (else 428).
    A value that names no version of ours can match nothing: 412."""
    header = request.headers.get(IF_MATCH)
    if header is None:
        if required:
            raise PreconditionRequired("send If-Match with the ETag you read")
        return None
    match = _TAG.fullmatch(header.strip())
    if match is None:
        raise StaleVersion("If-Match does not name a version of this resource")
    return int(match.group(1))
