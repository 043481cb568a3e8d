"""Product lists: customers' filtered lists come from the search index; staff lists from the catalog."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from products import schemas
from products.keys import CATALOG
from shopkit.pagination import encode_cursor
from shopkit.schemas import load_query


async def list_products(request: web.Request, *, staff: bool) -> dict[str, Any]:
    if (staff and "status" in request.query) or (staff and not _customer_filters(request)):
        return await _staff_list(request)
    from products.search.service import SEARCH  # the search package owns the customer listing

    return await request.app[SEARCH].list_products(request.query)


def _customer_filters(request: web.Request) -> bool:
    return any(key != "limit" and key != "cursor" for key in request.query)


async def _staff_list(request: web.Request) -> dict[str, Any]:
    """Every product whatever its status, in creation order (a collection scan: staff only)."""
    query = load_query(request, schemas.StaffListQuery())
    limit = query["limit"]
    found = await request.app[CATALOG].store.scan(
        after=query["cursor"], limit=limit + 1, status=query.get("status")
    )
    next_cursor = encode_cursor(found[limit - 1].id) if len(found) > limit else None
    return {"items": [p.public(staff=True) for p in found[:limit]], "next_cursor": next_cursor}
