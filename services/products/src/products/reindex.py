"""Reindex search from a deployment's database: `python -m products.reindex [--force]`.

It reads the catalog and the stock ledger, as a running instance would, so it lives beside `app.py`,
in neither package; `products.search.rebuild` does the zero-downtime swap.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator

from opensearchpy import AsyncOpenSearch, OpenSearchException
from pymongo.errors import PyMongoError

from products.catalog.store import ProductStore
from products.inventory.reservations import RESERVATIONS_COLLECTION
from products.inventory.service import Inventory
from products.inventory.store import InventoryStore
from products.model import Product
from products.search.errors import RebuildFailed, RebuildInProgress
from products.search.rebuild import BATCH, BULK_TIMEOUT, GRACE_SECONDS, Rebuilt, rebuild
from products.settings import ProductsSettings
from shopkit import logs, mongo
from shopkit.events import EventStore
from shopkit.settings import SettingsError, load


async def catalog_products(store: ProductStore, page: int = BATCH) -> AsyncIterator[Product]:
    """Every published product in id order, a page at a time (a collection scan: rebuilds only)."""
    after: str | None = None
    while True:
        found = await store.scan(after=after, limit=page, status="published")
        for product in found:
            yield product
        if len(found) < page:
            return
        after = found[-1].id


async def rebuild_from_environment(*, force: bool = False, grace: float = GRACE_SECONDS) -> Rebuilt:
    """Read the catalog and stock levels from the service's database, as a running instance would."""
    settings = load(ProductsSettings)
    logs.configure(settings.service_name, settings.log_level)
    mongo_client = mongo.client(settings.mongo_url.value)
    engine = AsyncOpenSearch(hosts=[settings.opensearch_url], timeout=BULK_TIMEOUT, max_retries=2)
    try:
        db = mongo_client[settings.database]
        store = ProductStore(db)

        inventory = Inventory(
            EventStore(db),
            EventStore(db, RESERVATIONS_COLLECTION),
            InventoryStore(db),
            store,
            reservation_ttl=settings.reservation_ttl,
            low_stock_threshold=settings.low_stock_threshold,
        )

        async def availability(skus: list[str]) -> dict[str, int]:
            levels = await inventory.levels(skus)
            return {sku: level.available for sku, level in levels.items()}

        return await rebuild(
            engine,
            settings.search_index,
            catalog_products(store),
            availability,
            force=force,
            grace=grace,
        )
    finally:
        await engine.close()
        await mongo_client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m products.reindex",
        description="Reindex every visible product with no downtime.",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="drop an index a crashed rebuild left under the -next alias instead of refusing",
    )
    args = parser.parse_args()
    try:
        result = asyncio.run(rebuild_from_environment(force=args.force))
    except (SettingsError, RebuildInProgress) as error:
        sys.exit(str(error))
    except (RebuildFailed, PyMongoError, OpenSearchException) as error:
        # The half-built index is already dropped; the live one was never touched.
        sys.exit(f"rebuild failed, the live index is unchanged: {type(error).__name__}: {error}")
    print(json.dumps({"index": result.index, "count": result.count, "replaced": result.replaced}))


if __name__ == "__main__":
    main()
