"""Routes only orders calls (the gateway never routes /internal/): read a cart, hold it for checkout."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from carts import checkout
from carts.errors import CartNotFound
from carts.keys import CARTS, PRICES, SETTINGS
from carts.schemas import HoldSchema
from carts.view import present
from shopkit.answers import json_response
from shopkit.auth import requires
from shopkit.headers import CACHE_CONTROL, ETAG
from shopkit.schemas import load_body
from shopkit.versions import etag

routes = web.RouteTableDef()


@routes.get("/internal/carts/{cart_id}")
@requires("service")
async def internal_cart(request: web.Request) -> web.Response:
    """A cart by id, priced live (a failure of products is a 502, 503 or 504)."""
    held = await request.app[CARTS].get(request.match_info["cart_id"])
    if held is None or not held.cart.exists:
        raise CartNotFound(f"no cart {request.match_info['cart_id']}")
    quotes = await request.app[PRICES].quotes([line.sku for line in held.cart.lines], live=True)
    body = present(held, quotes, request.app[SETTINGS].default_currency)
    return json_response(body, headers={ETAG: etag(body["version"]), CACHE_CONTROL: "no-store"})


@routes.post("/internal/carts/{cart_id}/checkout")
@requires("service")
async def checkout_cart(request: web.Request) -> web.Response:
    """Hold the cart for a pending order, if every line can be ordered at its live price: 201 held,
    200 when this order holds it already, 409 naming the problems or the order holding it."""
    body = await load_body(request, HoldSchema)
    settings = request.app[SETTINGS]
    _, view, made = await checkout.hold(
        request.app[CARTS],
        request.app[PRICES],
        request.match_info["cart_id"],
        body["order_id"],
        timedelta(seconds=settings.checkout_hold),
        settings.default_currency,
    )
    return json_response(
        view,
        status=201 if made else 200,
        headers={ETAG: etag(view["version"]), CACHE_CONTROL: "no-store"},
    )


@routes.post("/internal/carts/{cart_id}/checkout/{order_id}/release")
@requires("service")
async def release_cart(request: web.Request) -> web.Response:
    """The order will not be paid: the cart is free for another checkout, unchanged (idempotent)."""
    await checkout.release(
        request.app[CARTS],
        request.match_info["cart_id"],
        request.match_info["order_id"],
        "released",
    )
    return web.Response(status=204)
