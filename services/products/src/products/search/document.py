"""A product as the search index holds it: one document per product, stock kept per SKU by scripts."""

from __future__ import annotations

import json
from typing import Any

from products.model import AttributeValue, Product
from shopkit.clock import rfc3339


def attribute_text(value: AttributeValue) -> str:
    """The keyword an attribute value is faceted and filtered by: strings as they are, others as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def document(product: Product) -> dict[str, Any]:
    """The indexed fields of a visible product; `stock` and `in_stock` are the scripts' to maintain."""
    published = [variant for variant in product.variants if variant.published]
    cheapest = min(published, key=lambda variant: variant.price.amount)
    pairs: dict[tuple[str, str], None] = {}
    for attributes in [product.attributes, *(variant.attributes for variant in published)]:
        for name, value in attributes.items():
            pairs[(name, attribute_text(value))] = None
    return {
        "id": product.id,
        "slug": product.slug,
        "name": product.name,
        "description": product.description,
        "brand": product.brand,
        "category_id": product.category_id,
        "category_path": list(product.category_path),
        # One nested pair per distinct (name, value): a facet bucket's doc count is then a product count.
        "attrs": [{"name": name, "value": value} for name, value in pairs],
        "attr_text": sorted({value for _, value in pairs}),
        "price_min": cheapest.price.amount,
        "price_max": max(variant.price.amount for variant in published),
        "currency": cheapest.price.currency,
        "tracked": [variant.sku for variant in published if variant.track_stock],
        "untracked": any(not variant.track_stock for variant in published),
        "created_at": rfc3339(product.created_at),
        "updated_at": rfc3339(product.updated_at),
        "version": product.version,
        "visible": True,
        "product": product.public(),
    }


def tombstone(product_id: str, version: int) -> dict[str, Any]:
    """What stays of a product customers cannot see: its version, so an older snapshot cannot revive it."""
    return {"id": product_id, "version": version, "visible": False}


def indexed(product: Product) -> dict[str, Any]:
    return document(product) if product.visible else tombstone(product.id, product.version)
