"""Catalog use cases: create, change and archive products; each product is a stream of snapshots.

A change appends `product.changed` (the whole product) at the next sequence number, so an `If-Match`
naming an older version loses at the unique slot and is answered 412. Slugs and SKUs are claimed first
(unique `_id` inserts); the projection read by clients is written after the append, best-effort
(`AfterCommit`), and the relay repairs it before publishing if that failed or a crash came between.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from pymongo.errors import PyMongoError

from products.catalog.categories import Categories
from products.catalog.errors import ProductNotFound, SkuTaken, SlugTaken, StaleVersion
from products.catalog.store import ClaimTaken, ProductStore, stream
from products.events import CatalogEvent
from products.model import Product, ProductStatus, Variant
from shopkit import clock
from shopkit.commits import AfterCommit
from shopkit.events import ConcurrencyConflict, Event, EventStore
from shopkit.ids import new_id

log = logging.getLogger("products.catalog")

ORPHAN_CLAIM_AGE = timedelta(minutes=1)
Claim = tuple[str, str]
"""A slug or SKU claim: ("slug" or "sku", the key)."""


class Catalog:
    def __init__(
        self,
        store: ProductStore,
        events: EventStore,
        categories: Categories,
        after_commit: AfterCommit | None = None,
    ) -> None:
        self.store, self._events, self._categories = store, events, categories
        self._after_commit = after_commit or AfterCommit()

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

    async def create(
        self, fields: dict[str, Any], actor: str, operation: str | None = None
    ) -> Product:
        """`operation` (see `idempotency.operation_id`) names the creation's event, so a retry
        whose first attempt committed unanswered answers that product."""
        if operation is not None and (committed := await self._events.find(operation)):
            return Product.from_json(committed.data)
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
        taken: list[Claim] = []
        try:
            await self._claim(product, taken)
            # With `operation`, the append may find this very event landed by a lost attempt.
            landed = await self._events.append(
                stream(product_id), 0, CatalogEvent.PRODUCT_CHANGED, product.to_json(), operation
            )
            product = Product.from_json(landed.data)
        except BaseException:
            if taken:
                await self._give_back(product.id, taken, None)
            raise
        # Committed: the projection is best-effort (the relay repairs it, and a read of a product
        # without one falls back to its stream), so the client hears of the commit.
        await self._after_commit("product projection", self.store.save(product))
        return product

    async def update(
        self,
        key: str,
        changes: dict[str, Any],
        expected_version: int,
        actor: str,
        operation: str | None = None,
    ) -> Product:
        """`operation` names the change's event: a retry of a change that committed unanswered
        finds it in the version after `expected_version` and answers it, not 412."""
        current = await self.get(key, staff=True)
        if current.version != expected_version:
            if operation is not None:
                committed = await self._events.get(stream(current.id), expected_version + 1)
                if committed is not None and committed.id == operation:
                    return Product.from_json(committed.data)
            raise StaleVersion(f"the product is at version {current.version}")
        fields = _product_fields(changes)
        if "category_id" in changes:
            fields["category_path"] = await self._category_path(changes["category_id"])
        product = current.with_changes(
            **fields, version=current.version + 1, updated_at=clock.now(), updated_by=actor
        )
        taken: list[Claim] = []
        try:
            await self._claim(product, taken)
            landed = await self._events.append(
                stream(product.id),
                current.version,
                CatalogEvent.PRODUCT_CHANGED,
                product.to_json(),
                operation,
            )
            product = Product.from_json(landed.data)
        except ConcurrencyConflict:
            head = await self._give_back(product.id, taken, current)
            if head is not None and head is not current:
                await self.store.save(head)
            raise StaleVersion("the product changed since you read it") from None
        except BaseException:
            if taken:
                await self._give_back(product.id, taken, current)
            raise
        # Committed: what follows is best-effort, so the client hears of the commit.
        before = _claims(current)
        added = [claim for claim in _claims(product) if claim not in before]
        await self._after_commit("product claims", self._keep(product, added))
        # A slug the product no longer uses is free for others, unless a newer version took it
        # back; SKUs stay claimed for good, since the stock ledger and past orders name them.
        # Left claimed if this fails: a blocked slug, never one shared by two products.
        if current.slug != product.slug:
            await self._after_commit(
                "old slug release", self._give_back(product.id, [("slug", current.slug)], product)
            )
        await self._after_commit("product projection", self.store.save(product))
        return product

    async def archive(
        self, key: str, expected_version: int, actor: str, operation: str | None = None
    ) -> Product:
        archived = {"status": ProductStatus.ARCHIVED}
        return await self.update(key, archived, expected_version, actor, operation)

    async def repair(self, event: object) -> None:
        """Relay hook: before a product change leaves, the projection must show the stream's head.

        It saves the newest snapshot, never the one being published: a concurrent writer may already
        have moved on, and a projection must not step back to an older version.
        """
        if isinstance(event, Event) and event.type == CatalogEvent.PRODUCT_CHANGED:
            newer = await self._events.load(event.stream_id, after_seq=event.seq - 1)
            if newer:
                head = Product.from_json(newer[-1].data)
                # The keys the head uses, claimed again: the writer's own re-claim (`_keep`) runs
                # after the commit and may have failed; a claim already held costs one insert.
                await self._keep(head, _claims(head))
                await self.store.save(head)

    async def _category_path(self, category_id: str | None) -> tuple[str, ...]:
        if category_id is None:
            return ()
        await self._categories.get(category_id)
        return await self._categories.path(category_id)

    async def _claim(self, product: Product, taken: list[Claim]) -> None:
        """Claim the slug and every SKU, adding to `taken` each claim this call inserted.

        A claim a twin write inserted first is the twin's to give back, not this call's: were
        both to count it, this one could fail and give back a key the twin's landed version uses.
        A claim left behind by a creation that crashed is taken over.
        """
        for kind, key in _claims(product):
            owner = await self.store.claim_owner(kind, key)
            if owner is not None and owner[0] == product.id:
                continue
            try:
                try:
                    inserted = await self.store.claim(kind, key, product.id)
                except ClaimTaken as claimed:
                    if not await self._orphaned(kind, key, claimed.owner):
                        raise
                    await self.store.release_claim(kind, key, claimed.owner)
                    inserted = await self.store.claim(kind, key, product.id)
            except ClaimTaken:
                problem = SlugTaken if kind == "slug" else SkuTaken
                raise problem(f"{kind} {key!r} belongs to another product") from None
            if inserted:
                taken.append((kind, key))

    async def _give_back(
        self, product_id: str, claims: list[Claim], known: Product | None
    ) -> Product | None:
        """Release the claims the stream's head does not use; answers that head (`known`, the
        version the caller started from, when nothing is newer).

        For the claims a write that lost or failed inserted, and for the slug a change left. The
        head is read first, since a twin write may have landed using those very keys; and again
        after releasing, since a version that landed in between took its keys back in `_keep`,
        perhaps before this release: whatever the head uses then is claimed again. When the head
        cannot be read first, the claims stay: one left behind only blocks a key, one given back
        wrongly lets two products share a SKU, and so one stock ledger.
        """
        try:
            head = await self._head(product_id, known)
        except PyMongoError:
            log.warning("could not read product %s: its claims %s stay", product_id, claims)
            return known
        released = [claim for claim in claims if head is None or claim not in _claims(head)]
        for kind, key in released:
            await self.store.release_claim(kind, key, product_id)
        if not released:
            return head
        try:
            newest = await self._head(product_id, head)
        except PyMongoError:
            log.error("could not read product %s after releasing %s", product_id, released)
            return head
        if newest is not None:
            await self._keep(newest, [claim for claim in released if claim in _claims(newest)])
        return newest

    async def _head(self, product_id: str, known: Product | None) -> Product | None:
        """The stream's newest version, or `known` when nothing is newer than it."""
        newer = await self._events.load(
            stream(product_id), after_seq=known.version if known is not None else 0
        )
        return Product.from_json(newer[-1].data) if newer else known

    async def _keep(self, product: Product, added: list[Claim]) -> None:
        """Claim again each key `product` uses that a concurrent write may have given back.

        After an append, for each key the version added: a twin write that failed may have
        given it back, or the write of the version before released it as its old slug just as
        this version took it back (a release landing after this is undone by `_give_back`).
        Whatever else took the key meanwhile is a conflict no write can undo any more: logged
        for staff to fix.
        """
        for kind, key in added:
            try:
                await self.store.claim(kind, key, product.id)
            except ClaimTaken as claimed:
                log.error(
                    "%s %r of product %s was claimed by product %s while it was being saved",
                    kind,
                    key,
                    product.id,
                    claimed.owner,
                )

    async def _orphaned(self, kind: str, key: str, owner: str) -> bool:
        if await self.store.get(owner) is not None or await self._events.load(stream(owner)):
            return False
        claim = await self.store.claim_owner(kind, key)
        return claim is not None and clock.now() - claim[1] > ORPHAN_CLAIM_AGE


def _claims(product: Product) -> list[Claim]:
    return [("slug", product.slug)] + [("sku", variant.sku) for variant in product.variants]


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
