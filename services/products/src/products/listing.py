"""Product lists: customers' filtered lists come from the search index; staff lists from the catalog.

It joins the catalog and search, so it lives beside `app.py`, in neither package. When the search
engine is down, an unfiltered customer list still answers from the catalog itself,
so browsing keeps working; a filtered one answers 503 until the engine is back.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from products.catalog import schemas
from products.catalog.keys import CATALOG
from products.catalog.routes import PRIVATE, PUBLIC_CACHE, is_staff
from products.search.errors import SearchUnavailable
from products.search.keys import SEARCH
from shopkit.answers import json_response
from shopkit.auth import public
from shopkit.headers import CACHE_CONTROL
from shopkit.pagination import Page
from shopkit.schemas import load_query

routes = web.RouteTableDef()


@routes.get("/api/v1/products")
@public
async def list_all(request: web.Request) -> web.Response:
    page = await list_products(request, staff=is_staff(request))
    return json_response(
        page, headers={CACHE_CONTROL: PRIVATE if is_staff(request) else PUBLIC_CACHE}
    )


async def list_products(request: web.Request, *, staff: bool) -> dict[str, Any]:
    filtered = any(key not in {"limit", "cursor"} for key in request.query)
    # The catalog list reads the whole products collection per page on FerretDB, so only staff
    # (unfiltered or by status) and customers' unfiltered browsing while search is down reach it.
    if staff and ("status" in request.query or not filtered):
        return await _catalog_list(request, status=None, staff=True)
    try:
        return await request.app[SEARCH].list_products(request.query)
    except SearchUnavailable:
        if filtered:
            raise
        return await _catalog_list(request, status="published", staff=False)


async def _catalog_list(request: web.Request, *, status: str | None, staff: bool) -> dict[str, Any]:
    """Products in creation order straight from the catalog; on FerretDB each page reads the whole
    products collection (it pushes down no sort nor range)."""
    query = load_query(request, schemas.StaffListQuery())
    limit = query["limit"]
    found = await request.app[CATALOG].store.scan(
        after=query["cursor"], limit=limit + 1, status=query.get("status", status)
    )
    page = Page.of(found, limit, lambda p: p.id, lambda p: p.public(staff=staff))
    if not staff:  # hidden products fall out of the page; the cursor still moves past them
        page = Page(
            [item for item, p in zip(page.items, found, strict=False) if p.visible],
            page.next_cursor,
        )
    return page.to_json()
