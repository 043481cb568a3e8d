"""HTTP handlers of the catalog: categories and products (lists and the SKU lookup are `products.listing`
and `products.lookup`, which read search and inventory too)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from products.catalog import schemas
from products.catalog.keys import CATALOG, CATEGORIES
from products.model import Product
from shopkit.answers import json_response
from shopkit.auth import STAFF_ROLES as STAFF
from shopkit.auth import optional_principal, principal, public, requires
from shopkit.headers import (
    AUTHORIZATION,
    CACHE_CONTROL,
    ETAG,
    IF_NONE_MATCH,
    LOCATION,
    VARY,
)
from shopkit.idempotency import idempotent, operation_id
from shopkit.schemas import load_body
from shopkit.versions import if_match

routes = web.RouteTableDef()
PUBLIC_CACHE = "public, max-age=30"
PRIVATE = "private, no-store"


def is_staff(request: web.Request) -> bool:
    found = optional_principal(request)
    return found is not None and found.has_any(*STAFF)


def _expected_version(request: web.Request) -> int:
    """The version an `If-Match: "v7"` names; writes without one are refused (428)."""
    version = if_match(request, required=True)
    assert version is not None
    return version


def _cached(request: web.Request, body: Any, etag: str, staff: bool) -> web.Response:
    """A cacheable read: ETag always, 304 when the client already has this version."""
    headers = {
        ETAG: etag,
        CACHE_CONTROL: PRIVATE if staff else PUBLIC_CACHE,
        VARY: AUTHORIZATION,
    }
    if etag in {tag.strip() for tag in request.headers.get(IF_NONE_MATCH, "").split(",")}:
        return web.Response(status=304, headers=headers)
    return json_response(body, headers=headers)


def _written(product: Product, status: int = 200) -> web.Response:
    return json_response(
        product.public(staff=True),
        status=status,
        headers={ETAG: product.etag, LOCATION: f"/api/v1/products/{product.id}"},
    )


# --- categories


@routes.get("/api/v1/categories")
@public
async def list_categories(request: web.Request) -> web.Response:
    staff = is_staff(request)
    tree = request.app[CATEGORIES]
    found = await tree.all(include_archived=staff)
    body = {"items": [c.to_json() for c in found], "next_cursor": None}
    return _cached(request, body, f'"t{tree.tree_version}"', staff)


@routes.get("/api/v1/categories/{category_id}")
@public
async def get_category(request: web.Request) -> web.Response:
    staff = is_staff(request)
    tree = request.app[CATEGORIES]
    category = await tree.get(request.match_info["category_id"], include_archived=staff)
    return _cached(request, category.to_json(), f'"v{tree.version(category.id)}"', staff)


@routes.post("/api/v1/categories")
@requires(*STAFF)
@idempotent(required=False)
async def create_category(request: web.Request) -> web.Response:
    body = await load_body(request, schemas.CategorySchema())
    body.pop("archived", None)
    tree = request.app[CATEGORIES]
    category = await tree.create(body, operation_id(request))
    return json_response(
        category.to_json(),
        status=201,
        headers={
            ETAG: f'"v{tree.version(category.id)}"',
            LOCATION: f"/api/v1/categories/{category.id}",
        },
    )


@routes.patch("/api/v1/categories/{category_id}")
@requires(*STAFF)
@idempotent(required=False)
async def update_category(request: web.Request) -> web.Response:
    expected = _expected_version(request)
    body = await load_body(request, schemas.CategorySchema(), partial=True)
    tree = request.app[CATEGORIES]
    category = await tree.update(
        request.match_info["category_id"], body, expected, operation_id(request, expected)
    )
    return json_response(category.to_json(), headers={ETAG: f'"v{tree.version(category.id)}"'})


# --- products (fixed paths are registered before /{key} so they are not taken for a product:
# app.py adds `products.lookup`'s routes before these)


@routes.get("/api/v1/products/{key}")
@public
async def get_product(request: web.Request) -> web.Response:
    staff = is_staff(request)
    product = await request.app[CATALOG].get(request.match_info["key"], staff=staff)
    return _cached(request, product.public(staff=staff), product.etag, staff)


@routes.post("/api/v1/products")
@requires(*STAFF)
@idempotent(required=False)
async def create_product(request: web.Request) -> web.Response:
    body = await load_body(request, schemas.NewProductSchema())
    product = await request.app[CATALOG].create(
        body, actor=principal(request).subject, operation=operation_id(request)
    )
    return _written(product, status=201)


@routes.patch("/api/v1/products/{key}")
@requires(*STAFF)
@idempotent(required=False)
async def update_product(request: web.Request) -> web.Response:
    expected = _expected_version(request)
    body = await load_body(request, schemas.ProductSchema(), partial=True)
    product = await request.app[CATALOG].update(
        request.match_info["key"],
        body,
        expected,
        actor=principal(request).subject,
        operation=operation_id(request, expected),
    )
    return _written(product)


@routes.delete("/api/v1/products/{key}")
@requires(*STAFF)
@idempotent(required=False)
async def archive_product(request: web.Request) -> web.Response:
    """Archive (products are never erased: orders and the ledger still name their SKUs)."""
    expected = _expected_version(request)
    product = await request.app[CATALOG].archive(
        request.match_info["key"],
        expected,
        actor=principal(request).subject,
        operation=operation_id(request, expected),
    )
    return _written(product)
