"""The batch SKU lookup: what carts and orders need to price and check lines, in one call."""

from __future__ import annotations

from typing import Any

from products.catalog import Catalog
from products.inventory import Inventory


async def lookup(catalog: Catalog, inventory: Inventory, skus: list[str]) -> dict[str, Any]:
    """Published variants of visible products, with live availability; anything else is `missing`."""
    found: dict[str, tuple[Any, Any]] = {}
    for sku in skus:
        product_id = await catalog.store.product_id_for_sku(sku)
        product = await catalog.store.get(product_id) if product_id else None
        variant = product.variant(sku) if product and product.visible else None
        if product is not None and variant is not None and variant.published:
            found[sku] = (product, variant)
    levels = await inventory.levels(list(found))
    items = []
    for sku, (product, variant) in found.items():
        level = levels.get(sku)
        available = None if level is None or not variant.track_stock else level.available
        items.append(
            {
                "sku": sku,
                "product_id": product.id,
                "title": product.name,
                "slug": product.slug,
                "attributes": variant.attributes,
                "price": variant.price.to_json(),
                "compare_at_price": variant.compare_at_price.to_json()
                if variant.compare_at_price
                else None,
                "track_stock": variant.track_stock,
                "available": available,
                "in_stock": available is None or available > 0,
                "version": product.version,
            }
        )
    return {"items": items, "missing": [sku for sku in skus if sku not in found]}
