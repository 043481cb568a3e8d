"""Typed app state shared by every service: one AppKey per resource (the caller is auth.PRINCIPAL)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from pymongo.asynchronous.database import AsyncDatabase

from shopkit.metrics import Metrics
from shopkit.settings import KitSettings

if TYPE_CHECKING:
    from nats.aio.client import Client as Nats
    from nats.js import JetStreamContext

    from shopkit.apm import Apm
    from shopkit.auth import TokenVerifier
    from shopkit.commits import AfterCommit
    from shopkit.revocations import Revocations
else:  # AppKey wants a runtime type; the real ones are for the type checker.
    Nats = JetStreamContext = TokenVerifier = Revocations = AfterCommit = object

__all__ = [
    "AFTER_COMMIT",
    "APM",
    "DB",
    "HTTP",
    "INTERNAL_OPENAPI",
    "JETSTREAM",
    "METRICS",
    "NATS",
    "OPENAPI",
    "READINESS",
    "REVOCATIONS",
    "SETTINGS",
    "VERIFIER",
    "Readiness",
]

# A readiness check: returns when the resource answers, raises when it does not.
Readiness = Callable[[web.Application], Awaitable[None]]

SETTINGS = web.AppKey("settings", KitSettings)
METRICS = web.AppKey("metrics", Metrics)
DB = web.AppKey("db", AsyncDatabase)
NATS = web.AppKey("nats", Nats)
JETSTREAM = web.AppKey("jetstream", JetStreamContext)
HTTP = web.AppKey("http", aiohttp.ClientSession)
VERIFIER = web.AppKey("verifier", TokenVerifier)
# None unless ELASTIC_APM_SERVER_URL is set (shopkit.apm).
APM: web.AppKey[Apm | None] = web.AppKey("apm")
REVOCATIONS = web.AppKey("revocations", Revocations)
READINESS = web.AppKey("readiness", list[tuple[str, Readiness]])
OPENAPI = web.AppKey("openapi", dict[str, Any])
# The document of the routes only other services call (`/internal/`), kept out of the public one.
INTERNAL_OPENAPI = web.AppKey("internal_openapi", dict[str, Any])
AFTER_COMMIT = web.AppKey("after_commit", AfterCommit)
