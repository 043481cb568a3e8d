"""Inventory's part of the app: the Inventory in `app[INVENTORY]`, its sweeper and its order consumer."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from pymongo.errors import PyMongoError

from products.inventory.consumer import order_consumer
from products.inventory.keys import INVENTORY
from products.inventory.metrics import InventoryMetrics
from products.inventory.reservations import RESERVATIONS_COLLECTION
from products.inventory.service import Inventory
from products.inventory.store import InventoryStore
from products.inventory.sweeper import SWEEP_BATCH, SWEEP_INTERVAL
from products.keys import SETTINGS
from products.skus import SkuDirectory
from shopkit.events import EventStore
from shopkit.keys import DB, METRICS
from shopkit.tasks import background

log = logging.getLogger("products.inventory")


async def _sweep(app: web.Application) -> float | None:
    inventory = app[INVENTORY]
    due = await inventory.sweep()
    await inventory.save_snapshots()
    return 0 if due >= SWEEP_BATCH else None


def inventory_context(
    skus: Callable[[web.Application], SkuDirectory],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx entry: the Inventory in `app[INVENTORY]`, its sweeper and its order-event
    consumer; `skus(app)` says whether a SKU tracks stock."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        db = app[DB]
        events = EventStore(db)
        reservations = EventStore(db, RESERVATIONS_COLLECTION)
        store = InventoryStore(db)
        await events.ensure_indexes()
        await reservations.ensure_indexes()
        await store.ensure_indexes()
        inventory = Inventory(
            events,
            reservations,
            store,
            skus(app),
            reservation_ttl=settings.reservation_ttl,
            low_stock_threshold=settings.low_stock_threshold,
            metrics=InventoryMetrics.create(app[METRICS].registry, settings.service_name),
        )
        app[INVENTORY] = inventory
        jobs = (
            background("inventory-sweeper", _sweep, SWEEP_INTERVAL),
            order_consumer(settings.service_name, settings.orders_service),
        )
        async with contextlib.AsyncExitStack() as running:
            for job in jobs:
                await running.enter_async_context(contextlib.asynccontextmanager(job)(app))
            yield
        try:
            await inventory.save_snapshots(every=1)
        except PyMongoError:
            log.warning("could not save the stock snapshots on the way out; they are only a cache")

    return context
