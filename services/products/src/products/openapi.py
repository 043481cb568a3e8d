"""Which schema describes each handler's body and query in the products API's OpenAPI document."""

from __future__ import annotations

from marshmallow import Schema

from products.catalog import schemas
from products.inventory import schemas as inventory_schemas

BODIES: dict[str, type[Schema]] = {
    **inventory_schemas.OPENAPI_BODIES,
    "create_category": schemas.CategorySchema,
    "update_category": schemas.CategorySchema,
    "create_product": schemas.ProductSchema,
    "update_product": schemas.ProductSchema,
}
QUERIES: dict[str, type[Schema]] = {
    **inventory_schemas.OPENAPI_QUERIES,
    "lookup_skus": schemas.SkuLookupQuery,
}
