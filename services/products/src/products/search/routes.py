"""HTTP handlers of search: `/api/v1/search` and `/api/v1/search/autocomplete`, both public."""

from __future__ import annotations

from aiohttp import web

from products.search.keys import SEARCH
from products.search.schemas import autocomplete_params, search_params
from shopkit.answers import json_response
from shopkit.auth import public
from shopkit.headers import CACHE_CONTROL

routes = web.RouteTableDef()
# Results change within seconds of a product change; a short shared cache still absorbs bursts.
CACHE = {CACHE_CONTROL: "public, max-age=5"}


@routes.get("/api/v1/search")
@public
async def search(request: web.Request) -> web.Response:
    """Full-text search with facets: `q`, `category`, `brand`, `attr.<name>`, `min_price`, `max_price`,
    `in_stock`, `sort` (relevance, price, -price, newest, name), `limit` and `cursor`."""
    found = await request.app[SEARCH].search(search_params(request.query))
    return json_response(found, headers=CACHE)


@routes.get("/api/v1/search/autocomplete")
@public
async def autocomplete(request: web.Request) -> web.Response:
    """Up to 10 product names completing `q`, for the search box."""
    params = autocomplete_params(request.query)
    suggestions = await request.app[SEARCH].autocomplete(params["q"], params["limit"])
    return json_response({"suggestions": suggestions}, headers=CACHE)
