"""The batch SKU lookup: what carts and orders need to price and check lines, in one call.

It joins the catalog (price, title) with inventory (availability), so it lives beside `app.py`, in
neither package.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from products.catalog import schemas
from products.catalog.keys import CATALOG
from products.catalog.routes import PRIVATE
from products.catalog.store import ProductStore
from products.inventory.keys import INVENTORY
from products.inventory.service import Inventory
from shopkit.answers import json_response
from shopkit.auth import public
from shopkit.headers import CACHE_CONTROL
from shopkit.schemas import load_query

routes = web.RouteTableDef()


@routes.get("/api/v1/products/skus")
@public
async def lookup_skus(request: web.Request) -> web.Response:
    """Current price, title and availability of up to 100 SKUs in one call (carts and orders use it)."""
    skus = load_query(request, schemas.SkuLookupQuery())["skus"]
    found = await lookup(request.app[CATALOG].store, request.app[INVENTORY], skus)
    return json_response(found, headers={CACHE_CONTROL: PRIVATE})


async def lookup(store: ProductStore, inventory: Inventory, skus: list[str]) -> dict[str, Any]:
    """Published variants of visible products, with live availability; anything else is `missing`."""
    found: dict[str, tuple[Any, Any]] = {}
    for sku in skus:
        owned = await store.variant_of(sku)
        if owned is not None and owned[0].visible and owned[1].published:
            found[sku] = owned
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
