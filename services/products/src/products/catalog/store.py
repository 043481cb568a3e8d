"""Mongo access for the catalog: product projections by id, and unique claims on slugs and SKUs.

Every hot read here is an `_id` equality (a product by id, a slug's product, a SKU's product), an index
lookup on MongoDB and on FerretDB on PostgreSQL, which pushes down top-level equality but no range,
`$in` or sort (on FerretDB's SQLite option, every read scans). Uniqueness is a claim document whose
`_id` is the slug or SKU: inserting it is the only race-free "first one wins" on every MongoDB-wire
server.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from products.model import Product, Variant
from shopkit import clock
from shopkit.cache import Cache
from shopkit.events import EventStore


def stream(product_id: str) -> str:
    """The product's event stream: a `product.changed` snapshot per version."""
    return f"product-{product_id}"


class ClaimTaken(Exception):
    def __init__(self, owner: str) -> None:
        super().__init__(owner)
        self.owner = owner


class ProductStore:
    def __init__(self, db: AsyncDatabase[Any], cache: Cache[Product] | None = None) -> None:
        self.products = db.products
        self.slugs = db.product_slugs
        self.skus = db.product_skus
        self.cache: Cache[Product] = cache or Cache("products", ttl=0)
        self._events = EventStore(db)

    async def ensure_indexes(self) -> None:
        # Every other query here is an `_id` read. This index serves `scan` on MongoDB, filtered
        # by status or not (the `_id` index serves that one); FerretDB pushes down neither its
        # sort nor its `_id` range, so there a page reads the whole collection.
        await self.products.create_index([("status", ASCENDING), ("_id", ASCENDING)])

    # --- claims

    async def claim(self, kind: str, key: str, product_id: str) -> bool:
        """Claim a slug or SKU for a product: True when this call inserted the claim, False when
        the product held it already; raises ClaimTaken naming the owner if another has it."""
        collection = self.slugs if kind == "slug" else self.skus
        try:
            await collection.insert_one({"_id": key, "product_id": product_id, "at": clock.now()})
        except DuplicateKeyError:
            owner = await collection.find_one({"_id": key})
            if owner is None:  # released between our insert and our read: try once more
                return await self.claim(kind, key, product_id)
            if owner["product_id"] != product_id:
                raise ClaimTaken(owner["product_id"]) from None
            return False
        return True

    async def claim_owner(self, kind: str, key: str) -> tuple[str, datetime] | None:
        collection = self.slugs if kind == "slug" else self.skus
        doc = await collection.find_one({"_id": key})
        return (doc["product_id"], doc["at"]) if doc else None

    async def release_claim(self, kind: str, key: str, product_id: str) -> None:
        collection = self.slugs if kind == "slug" else self.skus
        await collection.delete_one({"_id": key, "product_id": product_id})

    async def product_id_for_sku(self, sku: str) -> str | None:
        owner = await self.claim_owner("sku", sku)
        return owner[0] if owner else None

    async def variant_of(self, sku: str) -> tuple[Product, Variant] | None:
        """The product that has the SKU, and the SKU's variant in its current version."""
        product_id = await self.product_id_for_sku(sku)
        product = await self.get(product_id) if product_id else None
        variant = product.variant(sku) if product is not None else None
        return (product, variant) if product is not None and variant is not None else None

    async def tracks_stock(self, sku: str) -> bool | None:
        """Whether the SKU's stock is counted, None when no product has it (a `SkuDirectory`)."""
        found = await self.variant_of(sku)
        return found[1].track_stock if found is not None else None

    async def product_id_for_slug(self, slug: str) -> str | None:
        owner = await self.claim_owner("slug", slug)
        return owner[0] if owner else None

    # --- projections

    async def get(self, product_id: str) -> Product | None:
        return await self.cache.get_or_load(product_id, lambda: self._load(product_id))

    async def _load(self, product_id: str) -> Product | None:
        doc = await self.products.find_one({"_id": product_id})
        if doc is not None:
            return Product.from_json(doc["product"])
        # A product whose creation committed but whose projection is not written yet (it failed
        # after the commit, and the relay has not repaired it): it was answered 201, so it exists.
        # Only for what can be a product id: a slug or a stranger's guess costs no stream read.
        if not ObjectId.is_valid(product_id):
            return None
        head = await self._events.head(stream(product_id))
        event = await self._events.get(stream(product_id), head) if head else None
        return Product.from_json(event.data) if event is not None else None

    async def save(self, product: Product) -> None:
        """Write the projection unless a newer version is already there (projections only move forward)."""
        current = await self.products.find_one({"_id": product.id}, {"version": 1})
        if current is None:
            try:
                await self.products.insert_one(self.document(product))
            except DuplicateKeyError:
                return await self.save(product)
        elif current["version"] < product.version:
            await self.products.replace_one(
                {"_id": product.id, "version": current["version"]}, self.document(product)
            )
        await self.cache.invalidate(product.id)

    async def scan(
        self, *, after: str | None, limit: int, status: str | None = None
    ) -> list[Product]:
        """Products in id order: staff lists, search rebuilds, and customers' unfiltered browsing
        while the search engine is down. The slow path: FerretDB pushes down no sort nor range,
        so each page reads the whole collection there; MongoDB walks the index above."""
        criteria: dict[str, Any] = {"status": status} if status else {}
        if after:
            criteria["_id"] = {"$gt": after}
        cursor = self.products.find(criteria).sort("_id", ASCENDING).limit(limit)
        return [Product.from_json(doc["product"]) async for doc in cursor]

    @staticmethod
    def document(product: Product) -> dict[str, Any]:
        return {
            "_id": product.id,
            "version": product.version,
            "status": product.status.value,
            "product": product.to_json(),
        }
