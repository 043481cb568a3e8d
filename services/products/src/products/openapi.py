"""The products API's OpenAPI document: which schema describes each handler's body and query."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from products.catalog import schemas
from products.inventory import schemas as inventory_schemas
from shopkit import openapi

BODIES = {
    "create_category": schemas.CategorySchema,
    "update_category": schemas.CategorySchema,
    "create_product": schemas.ProductSchema,
    "update_product": schemas.ProductSchema,
}
QUERIES = {"lookup_skus": schemas.SkuLookupQuery}


def document(app: web.Application) -> dict[str, Any]:
    bodies = {**BODIES, **getattr(inventory_schemas, "OPENAPI_BODIES", {})}
    queries = {**QUERIES, **getattr(inventory_schemas, "OPENAPI_QUERIES", {})}
    return openapi.document(app, title="products", version="1.0.0", bodies=bodies, queries=queries)
