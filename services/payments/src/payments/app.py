"""The payments service, wired: kit defaults, its stores and Stripe, the consumer of orders'
endings and the reconciler, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from aiohttp import web

from payments import endings, internal, reconciling, routes
from payments.gateway import StripeGateway
from payments.keys import EVENTS, PAYMENTS, SETTINGS
from payments.ledger import Payments
from payments.metrics import PaymentMetrics
from payments.openapi import OPERATIONS
from payments.settings import PaymentsSettings
from payments.store import PaymentStore
from shopkit.app import Api, build_app
from shopkit.auth import KeySource
from shopkit.events import EventStore
from shopkit.keys import DB, METRICS


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

    async def payments_ctx(app: web.Application) -> AsyncIterator[None]:
        app[EVENTS] = events = EventStore(app[DB])
        store = PaymentStore(app[DB])
        await store.ensure_indexes()
        stripe = StripeGateway(settings)
        app[PAYMENTS] = Payments(
            events,
            store,
            stripe,
            PaymentMetrics.create(app[METRICS].registry),
            reconcile_after=timedelta(seconds=settings.reconcile_after),
        )
        try:
            yield
        finally:
            await stripe.close()

    app.cleanup_ctx.append(payments_ctx)
    app.cleanup_ctx.append(endings.order_consumer(settings.service_name, settings.orders_service))
    app.cleanup_ctx.append(reconciling.reconciler(settings.reconcile_interval))
    app.router.add_routes(routes.routes)
    app.router.add_routes(internal.routes)
    return app
