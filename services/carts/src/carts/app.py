"""The carts service, wired: kit defaults, carts and their prices, the consumers and sweeper, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from aiohttp import web
from nats.aio.msg import Msg

from carts import checkout, internal, purging, routes
from carts.carts import Carts, Held, Retention
from carts.keys import CARTS, GUEST_QUOTA, PRICES, SETTINGS
from carts.metrics import CartMetrics
from carts.openapi import OPERATIONS
from carts.owners import GuestQuota
from carts.pricing import Prices, on_product_message
from carts.settings import CartsSettings
from carts.store import CartStore
from shopkit import broker
from shopkit.app import Api, build_app
from shopkit.auth import KeySource
from shopkit.cache import Cache
from shopkit.events import EventStore
from shopkit.http import ServiceClient
from shopkit.keys import AFTER_COMMIT, DB, HTTP, JETSTREAM, METRICS, NATS

# A cart's state in memory outlives no write elsewhere (each one drops it), only a broadcast lost
# in a broker outage: this bounds how long such a stale copy is read.
CART_CACHE_SECONDS = 60.0
CACHED_CARTS = 20_000


def create_app(
    settings: CartsSettings, *, keys: Callable[[web.Application], KeySource] | None = None
) -> web.Application:
    """`keys` overrides where access tokens are verified from (the JWKS URL by default)."""
    app = build_app(
        settings,
        settings_key=SETTINGS,
        keys=keys,
        api=Api("carts", operations=OPERATIONS),
    )

    async def carts_ctx(app: web.Application) -> AsyncIterator[None]:
        store = CartStore(app[DB])
        await store.ensure_indexes()
        events = EventStore(app[DB], "cart_events")
        await events.ensure_indexes()
        cache: Cache[Held] = Cache("carts", ttl=CART_CACHE_SECONDS, size=CACHED_CARTS)
        await cache.attach(app[NATS], settings.service_name)
        retention = Retention(
            guest=timedelta(days=settings.guest_cart_days),
            user=timedelta(days=settings.user_cart_days),
            empty=timedelta(hours=settings.empty_cart_hours),
        )
        metrics = CartMetrics.create(app[METRICS].registry)
        app[CARTS] = Carts(events, store, cache, retention, app[AFTER_COMMIT], metrics)
        app[GUEST_QUOTA] = GuestQuota(settings.guest_carts_per_minute)
        yield
        await cache.detach()

    async def prices_ctx(app: web.Application) -> AsyncIterator[None]:
        products = ServiceClient(
            app[HTTP],
            "products",
            settings.products_url,
            timeout=settings.products_timeout,
            metrics=app[METRICS],
            caller=settings.service_name,
        )
        app[PRICES] = prices = Prices(products, ttl=settings.price_ttl)

        async def received(message: Msg) -> None:
            on_product_message(prices, message)

        publisher = settings.products_service
        subscription = await broker.follow(
            app[JETSTREAM], publisher, broker.subject(publisher, ">"), received
        )
        yield
        await subscription.unsubscribe()

    app.cleanup_ctx.append(carts_ctx)
    app.cleanup_ctx.append(prices_ctx)
    app.cleanup_ctx.append(checkout.order_consumer(settings.service_name, settings.orders_service))
    app.cleanup_ctx.append(purging.sweeper)
    app.router.add_routes(routes.routes)
    app.router.add_routes(internal.routes)
    return app
