"""Catalog use cases: create, change and archive products; each product is a stream of snapshots.

A change appends `product.changed` (the whole product) at the next sequence number, so an `If-Match`
naming an older version loses at the unique slot and is answered 412. Slugs and SKUs are claimed first
(unique `_id` inserts); the projection read by clients is written after the append, and the relay
repairs it before publishing if a crash came in between.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from products.categories import Categories
from products.errors import ProductNotFound, SkuTaken, SlugTaken, StaleVersion
from products.model import Product, ProductStatus, Variant
from products.store import ClaimTaken, ProductStore
from shopkit import clock
from shopkit.events import ConcurrencyConflict, Event, EventStore
from shopkit.ids import new_id

ORPHAN_CLAIM_AGE = timedelta(minutes=1)


def stream(product_id: str) -> str:
    return f"product-{product_id}"


class Catalog:
    def __init__(self, store: ProductStore, events: EventStore, categories: Categories) -> None:
        self.store, self._events, self._categories = store, events, categories

    # --- reads

    async def get(self, key: str, *, staff: bool) -> Product:
        """By id or by slug; customers only find visible products."""
        product = await self.store.get(key)
        if product is None:
            owner = await self.store.product_id_for_slug(key)
            product = await self.store.get(owner) if owner else None
        if product is None or not (staff or product.visible):
            raise ProductNotFound()
        return product

    # --- writes

    async def create(self, fields: dict[str, Any], actor: str) -> Product:
        product_id = new_id()
        now = clock.now()
        product = Product(
            id=product_id,
            version=1,
            created_at=now,
            updated_at=now,
            updated_by=actor,
            category_path=await self._category_path(fields.get("category_id")),
            **_product_fields(fields),
        )
        taken = await self._claim(product)
        try:
            await self._events.append(stream(product_id), 0, "product.changed", product.to_json())
        except BaseException:
            await self._release(product.id, taken)
            raise
        await self.store.save(product)
        return product

    async def update(
        self, key: str, changes: dict[str, Any], expected_version: int, actor: str
    ) -> Product:
        current = await self.get(key, staff=True)
        if current.version != expected_version:
            raise StaleVersion(f"the product is at version {current.version}")
        fields = _product_fields(changes)
        if "category_id" in changes:
            fields["category_path"] = await self._category_path(changes["category_id"])
        product = current.with_changes(
            **fields, version=current.version + 1, updated_at=clock.now(), updated_by=actor
        )
        taken = await self._claim(product)
        try:
            await self._events.append(
                stream(product.id), current.version, "product.changed", product.to_json()
            )
        except ConcurrencyConflict:
            await self._release(product.id, taken)
            await self._catch_up(current)
            raise StaleVersion("the product changed since you read it") from None
        except BaseException:
            await self._release(product.id, taken)
            raise
        # A slug the product no longer uses is free for others; SKUs stay claimed for good, since
        # the stock ledger and past orders name them.
        if current.slug != product.slug:
            await self.store.release_claim("slug", current.slug, product.id)
        await self.store.save(product)
        return product

    async def archive(self, key: str, expected_version: int, actor: str) -> Product:
        return await self.update(key, {"status": ProductStatus.ARCHIVED}, expected_version, actor)

    async def repair(self, event: object) -> None:
        """Relay hook: before a product change leaves, the projection must show the stream's head.

        It saves the newest snapshot, never the one being published: a concurrent writer may already
        have moved on, and a projection must not step back to an older version.
        """
        if isinstance(event, Event) and event.type == "product.changed":
            newer = await self._events.load(event.stream_id, after_seq=event.seq - 1)
            if newer:
                await self.store.save(Product.from_json(newer[-1].data))

    async def _catch_up(self, stale: Product) -> None:
        newer = await self._events.load(stream(stale.id), after_seq=stale.version)
        if newer:
            await self.store.save(Product.from_json(newer[-1].data))

    async def _category_path(self, category_id: str | None) -> tuple[str, ...]:
        if category_id is None:
            return ()
        await self._categories.get(category_id)
        return await self._categories.path(category_id)

    async def _claim(self, product: Product) -> list[tuple[str, str]]:
        """Claim the slug and every SKU; answers the claims this call newly took.

        A claim left behind by a creation that crashed is taken over.
        """
        taken: list[tuple[str, str]] = []
        wanted = [("slug", product.slug)] + [("sku", v.sku) for v in product.variants]
        try:
            for kind, key in wanted:
                owner = await self.store.claim_owner(kind, key)
                if owner is not None and owner[0] == product.id:
                    continue
                try:
                    await self.store.claim(kind, key, product.id)
                except ClaimTaken as claimed:
                    if not await self._orphaned(kind, key, claimed.owner):
                        raise
                    await self.store.release_claim(kind, key, claimed.owner)
                    await self.store.claim(kind, key, product.id)
                taken.append((kind, key))
        except ClaimTaken:
            await self._release(product.id, taken)
            problem = SlugTaken if kind == "slug" else SkuTaken
            raise problem(f"{kind} {key!r} belongs to another product") from None
        except BaseException:
            await self._release(product.id, taken)
            raise
        return taken

    async def _release(self, product_id: str, taken: list[tuple[str, str]]) -> None:
        for kind, key in taken:
            await self.store.release_claim(kind, key, product_id)

    async def _orphaned(self, kind: str, key: str, owner: str) -> bool:
        if await self.store.get(owner) is not None or await self._events.load(stream(owner)):
            return False
        claim = await self.store.claim_owner(kind, key)
        return claim is not None and clock.now() - claim[1] > ORPHAN_CLAIM_AGE


def _product_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Schema output to Product fields (variants and tuples in their value types)."""
    values = {k: v for k, v in fields.items() if k not in {"variants", "images", "category_id"}}
    if "category_id" in fields:
        values["category_id"] = fields["category_id"]
    if "variants" in fields:
        values["variants"] = tuple(
            v if isinstance(v, Variant) else Variant(**v) for v in fields["variants"]
        )
    if "images" in fields:
        values["images"] = tuple(fields["images"])
    if "status" in values:
        values["status"] = ProductStatus(values["status"])
    return values
