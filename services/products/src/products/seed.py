"""Bulk-load the demo catalog (products.demo) straight into the products database and search index.

Going through the HTTP API would cost minutes on FerretDB; this writes the very documents the API
would (claims, `product.changed` snapshots, `stock.received` ledger events, projections) in batches,
as history that needs no publishing, then rebuilds the search index from the catalog. Products whose
slug is already claimed are skipped, so running it twice changes nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opensearchpy import AsyncOpenSearch
from pymongo.errors import BulkWriteError

from products import demo
from products.catalog.categories import Categories
from products.catalog.schemas import ProductSchema
from products.catalog.store import ProductStore
from products.catalog.store import stream as product_stream
from products.events import CatalogEvent
from products.inventory import ledger
from products.inventory.stock import ledger_stream
from products.model import Product, ProductStatus
from products.reindex import catalog_products
from products.search.rebuild import BULK_TIMEOUT, rebuild
from products.settings import ProductsSettings
from shopkit import clock, mongo
from shopkit.events import EventStore, NewEvent
from shopkit.ids import new_id
from shopkit.schemas import validate
from shopkit.settings import load

BATCH = 250
ACTOR = "system:seed"


async def seed_categories(categories: Categories) -> dict[str, str]:
    existing = {c.slug: c.id for c in await categories.all(include_archived=True)}
    for slug, name, parent in demo.categories():
        if slug not in existing:
            created = await categories.create(
                {"slug": slug, "name": name, "parent_id": existing[parent] if parent else None}
            )
            existing[slug] = created.id
    return existing


async def _insert_ignoring_duplicates(collection: Any, documents: list[dict[str, Any]]) -> None:
    try:
        await collection.insert_many(documents, ordered=False)
    except BulkWriteError as error:
        if any(e.get("code") != 11000 for e in error.details.get("writeErrors", [])):
            raise


async def seed_products(
    store: ProductStore, events: EventStore, categories: Categories, category_ids: dict[str, str]
) -> dict[str, int]:
    """Writes every demo product not yet there; answers the units received per SKU."""
    claimed = {doc["_id"] async for doc in store.slugs.find({}, {"_id": 1})}
    paths = {slug: await categories.path(cid) for slug, cid in category_ids.items()}
    stock: dict[str, int] = {}
    pending = [item for item in demo.products() if item.body["slug"] not in claimed]
    for start in range(0, len(pending), BATCH):
        products, streams, claims = [], {}, []
        for item in pending[start : start + BATCH]:
            fields = validate(
                ProductSchema(), {**item.body, "category_id": category_ids[item.category]}
            )
            now = clock.now()
            product = Product(
                id=new_id(),
                version=1,
                created_at=now,
                updated_at=now,
                updated_by=ACTOR,
                category_path=paths[item.category],
                **{
                    **fields,
                    "status": ProductStatus(fields["status"]),
                    "variants": tuple(fields["variants"]),
                    "images": tuple(fields["images"]),
                },
            )
            products.append(product)
            streams[product_stream(product.id)] = [
                NewEvent(CatalogEvent.PRODUCT_CHANGED, product.to_json())
            ]
            claims.append(("slug", product.slug, product.id))
            for sku, units in item.stock.items():
                claims.append(("sku", sku, product.id))
                stock[sku] = units
                if units:
                    streams[ledger_stream(sku)] = [
                        ledger.receive(
                            ledger.Ledger(), sku, units, ACTOR, "demo seed", f"seed:{sku}"
                        )
                    ]
        now = clock.now()
        await _insert_ignoring_duplicates(
            store.slugs,
            [{"_id": k, "product_id": p, "at": now} for kind, k, p in claims if kind == "slug"],
        )
        await _insert_ignoring_duplicates(
            store.skus,
            [{"_id": k, "product_id": p, "at": now} for kind, k, p in claims if kind == "sku"],
        )
        await events.append_batch(streams)
        await store.products.insert_many([store.document(p) for p in products])
        print(f"  {start + len(products)}/{len(pending)} products", flush=True)
    return stock


async def main() -> None:
    settings = load(ProductsSettings)
    started = time.monotonic()
    client = mongo.client(settings.mongo_url.value)
    engine = AsyncOpenSearch(hosts=[settings.opensearch_url], timeout=BULK_TIMEOUT, max_retries=2)
    try:
        db = client[settings.database]
        events, store = EventStore(db), ProductStore(db)
        await events.ensure_indexes()
        categories = Categories(events)
        category_ids = await seed_categories(categories)
        stock = await seed_products(store, events, categories, category_ids)
        print(
            f"catalog written in {time.monotonic() - started:.0f} s; indexing for search...",
            flush=True,
        )

        async def availability(skus: list[str]) -> dict[str, int]:
            return {sku: stock[sku] for sku in skus if sku in stock}

        rebuilt = await rebuild(
            engine, settings.search_index, catalog_products(store), availability, force=True
        )
        print(
            f"seeded {len(category_ids)} categories, {len(stock)} SKUs; indexed {rebuilt.count} "
            f"products in {time.monotonic() - started:.0f} s"
        )
    finally:
        await engine.close()
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
