"""The orders service, wired: kit defaults, orders and the services checkout calls, the payments
consumer and the expiry sweeper, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from orders import lifecycle, rates, routes
from orders.checkout import Checkout, Timing
from orders.clients import Upstreams
from orders.keys import CHECKOUT, ORDERS, RATES, SETTINGS, UPSTREAMS
from orders.metrics import OrderMetrics
from orders.openapi import OPERATIONS
from orders.orders import Orders
from orders.settings import OrdersSettings
from orders.store import OrderStore
from shopkit.app import Api, build_app
from shopkit.auth import KeySource
from shopkit.events import EventStore
from shopkit.http import ServiceClient
from shopkit.keys import AFTER_COMMIT, DB, HTTP, METRICS
from shopkit.service_tokens import ClientCredentials, ServiceTokens

TokenSource = Callable[[web.Application], ServiceTokens]


def create_app(
    settings: OrdersSettings,
    *,
    keys: Callable[[web.Application], KeySource] | None = None,
    service_tokens: TokenSource | None = None,
) -> web.Application:
    """`keys` overrides where access tokens are verified from (the JWKS URL by default);
    `service_tokens` where this service's own token comes from (users, by default)."""
    app = build_app(
        settings,
        settings_key=SETTINGS,
        keys=keys,
        api=Api("orders", operations=OPERATIONS),
        idempotency_keys=True,
        outbox=True,
    )
    app[RATES] = rates.load(Path(settings.rates_file) if settings.rates_file else None)

    async def orders_ctx(app: web.Application) -> AsyncIterator[None]:
        store = OrderStore(app[DB])
        await store.ensure_indexes()
        events = EventStore(app[DB])
        await events.ensure_indexes()
        app[ORDERS] = Orders(events, store, app[AFTER_COMMIT])
        yield

    async def upstreams_ctx(app: web.Application) -> AsyncIterator[None]:
        def client(name: str, url: str) -> ServiceClient:
            return ServiceClient(
                app[HTTP],
                name,
                url,
                timeout=settings.upstream_timeout,
                metrics=app[METRICS],
                caller=settings.service_name,
            )

        users = client("users", settings.users_url)
        tokens = (
            service_tokens(app)
            if service_tokens is not None
            else ClientCredentials(
                users,
                settings.service_client_id or settings.service_name,
                settings.service_client_secret.value,
            )
        )
        app[UPSTREAMS] = upstreams = Upstreams(
            carts=client("carts", settings.carts_url),
            products=client("products", settings.products_url),
            payments=client("payments", settings.payments_url),
            users=users,
            tokens=tokens,
        )
        timing = Timing(
            payment_window=timedelta(seconds=settings.payment_window),
            deadline=timedelta(seconds=settings.checkout_deadline),
            reservation_grace=timedelta(seconds=settings.reservation_grace),
        )
        metrics = OrderMetrics.create(app[METRICS].registry)
        app[CHECKOUT] = Checkout(app[ORDERS], upstreams, app[RATES], timing, metrics)
        yield

    app.cleanup_ctx.append(orders_ctx)
    app.cleanup_ctx.append(upstreams_ctx)
    app.cleanup_ctx.append(
        lifecycle.payment_consumer(settings.service_name, settings.payments_service)
    )
    app.cleanup_ctx.append(lifecycle.sweeper(settings.sweep_interval))
    app.router.add_routes(routes.routes)
    return app
