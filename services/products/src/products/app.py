"""The products service, wired: kit defaults, catalog, inventory, search, background jobs, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

import products.inventory_routes
from products import catalog_routes
from products.catalog import Catalog
from products.categories import Categories
from products.inventory import inventory_ctx
from products.keys import CATALOG, CATEGORIES, SETTINGS
from products.model import Product
from products.openapi import OPERATIONS
from products.search import routes as search_routes
from products.search.service import search_ctx
from products.settings import ProductsSettings
from products.store import ProductStore
from shopkit.app import Api, build_app
from shopkit.auth import KeySource
from shopkit.cache import Cache
from shopkit.events import EventStore
from shopkit.keys import DB, NATS


def create_app(
    settings: ProductsSettings, *, keys: Callable[[web.Application], KeySource] | None = None
) -> web.Application:
    """`keys` overrides where access tokens are verified from (the JWKS URL by default)."""
    app = build_app(
        settings,
        settings_key=SETTINGS,
        keys=keys,
        api=Api("products", operations=OPERATIONS),
        idempotency_keys=True,
        outbox=True,
        before_publish=repair_projection,
    )

    async def catalog_ctx(app: web.Application) -> AsyncIterator[None]:
        db = app[DB]
        events = EventStore(db)
        cache: Cache[Product] = Cache("products", ttl=60.0)
        await cache.attach(app[NATS], settings.service_name)
        store = ProductStore(db, cache)
        await store.ensure_indexes()
        app[CATEGORIES] = Categories(events)
        app[CATALOG] = Catalog(store, events, app[CATEGORIES])
        yield
        await cache.detach()

    app.cleanup_ctx.append(catalog_ctx)
    app.cleanup_ctx.append(inventory_ctx)
    app.cleanup_ctx.append(search_ctx)
    app.router.add_routes(catalog_routes.routes)
    app.router.add_routes(products.inventory_routes.routes)
    app.router.add_routes(search_routes.routes)
    return app


async def repair_projection(app: web.Application, event: object) -> None:
    """Before a product change leaves, make sure its projection shows it (a crash may have skipped it)."""
    await app[CATALOG].repair(event)
