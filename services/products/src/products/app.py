"""The products service, wired: kit defaults, catalog, inventory, search, background jobs, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from products import listing, lookup
from products.catalog import routes as catalog_routes
from products.catalog.categories import Categories
from products.catalog.keys import CATALOG, CATEGORIES
from products.catalog.service import Catalog
from products.catalog.store import ProductStore
from products.inventory import routes as inventory_routes
from products.inventory.context import inventory_context
from products.keys import SETTINGS
from products.model import Product
from products.openapi import OPERATIONS
from products.search import routes as search_routes
from products.search.context import search_context
from products.settings import ProductsSettings
from products.skus import SkuDirectory
from shopkit.app import Api, build_app
from shopkit.auth import KeySource
from shopkit.cache import Cache
from shopkit.events import EventStore
from shopkit.keys import AFTER_COMMIT, DB, NATS


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
        app[CATALOG] = Catalog(store, events, app[CATEGORIES], app[AFTER_COMMIT])
        yield
        await cache.detach()

    app.cleanup_ctx.append(catalog_ctx)
    app.cleanup_ctx.append(inventory_context(catalog_skus))
    app.cleanup_ctx.append(search_context(catalog_skus))
    # Before the catalog's `/api/v1/products/{key}`, which would take `skus` for a product.
    app.router.add_routes(lookup.routes)
    app.router.add_routes(catalog_routes.routes)
    app.router.add_routes(listing.routes)
    app.router.add_routes(inventory_routes.routes)
    app.router.add_routes(search_routes.routes)
    return app


def catalog_skus(app: web.Application) -> SkuDirectory:
    """The SKU directory inventory and search ask: the catalog's own store."""
    return app[CATALOG].store


async def repair_projection(app: web.Application, event: object) -> None:
    """Before a product change leaves, make sure its projection shows it (a crash may have skipped it)."""
    await app[CATALOG].repair(event)
