"""The payments service, wired: kit defaults, its event store, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from payments.keys import EVENTS, SETTINGS
from payments.routes import OPERATIONS, routes
from payments.settings import PaymentsSettings
from shopkit.app import Api, build_app
from shopkit.auth import KeySource
from shopkit.events import EventStore
from shopkit.keys import DB


def create_app(
    settings: PaymentsSettings, *, keys: Callable[[web.Application], KeySource] | None = None
) -> web.Application:
    """`keys` overrides where access tokens are verified from (the JWKS URL by default)."""
    app = build_app(
        settings,
        settings_key=SETTINGS,
        keys=keys,
        api=Api("payments", operations=OPERATIONS),
        idempotency_keys=True,
        outbox=True,
    )

    async def events_ctx(app: web.Application) -> AsyncIterator[None]:
        app[EVENTS] = EventStore(app[DB])
        yield

    app.cleanup_ctx.append(events_ctx)
    app.router.add_routes(routes)
    return app
