"""HTTP handlers of the carts API: the caller's own cart, and any cart by id for staff."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from carts import changes, merging
from carts.carts import Held
from carts.errors import CartNotFound, LineNotFound, PricesUnavailable, UnknownSku
from carts.keys import CARTS, GUEST_QUOTA, PRICES, SETTINGS
from carts.owners import guest_cart_id
from carts.pricing import Quote
from carts.schemas import AddLineSchema, ChangeLineSchema, DetailsSchema
from carts.view import present
from shopkit.answers import json_response
from shopkit.auth import STAFF_ROLES, optional_principal, principal, requires, signed_in_or_not
from shopkit.headers import CACHE_CONTROL, CART_TOKEN, ETAG, REAL_IP
from shopkit.idempotency import retry_id
from shopkit.problems import ValidationFailed
from shopkit.schemas import load_body
from shopkit.versions import etag, if_match

routes = web.RouteTableDef()
NEW_TOKEN = web.RequestKey("carts.new_token", str)
NO_STORE = "private, no-store"


async def _current(request: web.Request) -> Held | None:
    """The caller's cart: a signed-in user's own, else the guest's by its token; None when there is
    none yet."""
    carts = request.app[CARTS]
    user, token = optional_principal(request), _token(request)
    if user is not None:
        return await carts.of_user(user.subject)
    return await carts.of_guest(token) if token is not None else None


def _token(request: web.Request) -> str | None:
    """The guest token sent, if any; 404 for one that cannot be ours, whoever sends it."""
    token = request.headers.get(CART_TOKEN)
    if token is not None:
        guest_cart_id(token)
    return token


async def _writable(request: web.Request) -> tuple[Held, bool]:
    """The caller's cart, made on their first write; whether it was made now."""
    carts = request.app[CARTS]
    user = optional_principal(request)
    if user is not None:
        _token(request)
        return await carts.open_for_user(user.subject)
    held = await _current(request)
    if held is not None:
        return held, False
    # nginx sets X-Real-IP to the connecting address; services are only reachable through it.
    request.app[GUEST_QUOTA].take(request.headers.get(REAL_IP) or request.remote or "unknown")
    held, token = await carts.open_for_guest()
    request[NEW_TOKEN] = token
    return held, True


async def _answer(request: web.Request, held: Held | None, status: int = 200) -> web.Response:
    skus = [line.sku for line in held.cart.lines] if held is not None else []
    quotes = await request.app[PRICES].quotes(skus)
    body = present(held, quotes, request.app[SETTINGS].default_currency)
    return _json(request, body, status)


def _json(request: web.Request, body: dict[str, Any], status: int = 200) -> web.Response:
    headers = {ETAG: etag(body["version"]), CACHE_CONTROL: NO_STORE}
    if NEW_TOKEN in request:
        headers[CART_TOKEN] = request[NEW_TOKEN]
    return json_response(body, status=status, headers=headers)


async def _quote(request: web.Request, sku: str) -> Quote:
    """A SKU's live quote, to put more of it in a cart: 422 when it is not for sale, 503 when
    products cannot say."""
    quotes = await request.app[PRICES].quotes([sku])
    quote = quotes.found.get(sku)
    if quote is None or quotes.stale:
        raise PricesUnavailable(f"the price of {sku} cannot be checked right now; retry shortly")
    if not quote.for_sale:
        raise UnknownSku(sku)
    return quote


@routes.get("/api/v1/carts/current")
@signed_in_or_not
async def current_cart(request: web.Request) -> web.Response:
    """The caller's cart with live prices and totals (an empty one when they have none yet)."""
    return await _answer(request, await _current(request))


@routes.post("/api/v1/carts/current/lines")
@signed_in_or_not
async def add_line(request: web.Request) -> web.Response:
    """Put a quantity of a SKU in the cart (its line grows if it has one); 201 when this made the
    cart. Any price sent is ignored: the catalog prices every line."""
    body = await load_body(request, AddLineSchema)
    quote = await _quote(request, body["sku"])
    held, made = await _writable(request)
    operation = await retry_id(request, held.id)
    decision = changes.add(
        quote, body["quantity"], expected=if_match(request, required=False), event_id=operation
    )
    held = await request.app[CARTS].write(held, decision, event_id=operation)
    return await _answer(request, held, 201 if made else 200)


@routes.patch("/api/v1/carts/current/lines/{sku}")
@signed_in_or_not
async def change_line(request: web.Request) -> web.Response:
    """Set the quantity of the SKU's line; raising it checks the price and stock again."""
    body = await load_body(request, ChangeLineSchema)
    sku = request.match_info["sku"]
    held = await _required(request)
    line = held.cart.line(sku)
    if line is not None and body["quantity"] > line.quantity:
        quote: Quote | None = await _quote(request, sku)
    elif line is not None:  # lowering needs no price; a fresh one updates the one seen
        found = await request.app[PRICES].quotes([sku])
        quote = None if found.stale else found.found.get(sku)
    else:  # no such line: the decision says so, without asking products about any path
        quote = None
    operation = await retry_id(request, held.id)
    decision = changes.change(
        sku, body["quantity"], quote, expected=if_match(request, required=False), event_id=operation
    )
    return await _answer(
        request, await request.app[CARTS].write(held, decision, event_id=operation)
    )


@routes.delete("/api/v1/carts/current/lines/{sku}")
@signed_in_or_not
async def remove_line(request: web.Request) -> web.Response:
    """Take the SKU's line out of the cart."""
    held = await _required(request)
    operation = await retry_id(request, held.id)
    decision = changes.remove(
        request.match_info["sku"], expected=if_match(request, required=False), event_id=operation
    )
    return await _answer(
        request, await request.app[CARTS].write(held, decision, event_id=operation)
    )


@routes.delete("/api/v1/carts/current/lines")
@signed_in_or_not
async def empty_cart(request: web.Request) -> web.Response:
    """Take every line out of the cart (the note, email and country stay)."""
    held = await _current(request)
    if held is None:  # nothing to empty
        return await _answer(request, None)
    operation = await retry_id(request, held.id)
    decision = changes.empty(expected=if_match(request, required=False), event_id=operation)
    return await _answer(
        request, await request.app[CARTS].write(held, decision, event_id=operation)
    )


@routes.patch("/api/v1/carts/current")
@signed_in_or_not
async def describe_cart(request: web.Request) -> web.Response:
    """Set or clear (null) the cart's note, the guest's email and the ship-to country; 201 when
    this made the cart."""
    body = await load_body(request, DetailsSchema)
    if not body:  # a merge patch of nothing changes nothing, and makes no cart
        return await _answer(request, await _current(request))
    held, made = await _writable(request)
    operation = await retry_id(request, held.id)
    decision = changes.describe(
        body, expected=if_match(request, required=False), event_id=operation
    )
    held = await request.app[CARTS].write(held, decision, event_id=operation)
    return await _answer(request, held, 201 if made else 200)


@routes.post("/api/v1/carts/current/merge")
async def merge_cart(request: web.Request) -> web.Response:
    """At sign-in, take the guest cart of `X-Cart-Token` into the user's: quantities of one SKU add
    up to the per-line maximum, and the answer's `merge` says what was capped or dropped. The guest
    token is dead afterwards; merging again changes nothing and answers the same report."""
    token = request.headers.get(CART_TOKEN)
    if token is None:
        raise ValidationFailed(
            f"send the guest cart's token in {CART_TOKEN}",
            errors={CART_TOKEN: ["the guest cart to merge is required"]},
        )
    held, report = await merging.merge(request.app[CARTS], principal(request).subject, token)
    skus = [line.sku for line in held.cart.lines]
    quotes = await request.app[PRICES].quotes(skus)
    body = present(held, quotes, request.app[SETTINGS].default_currency)
    return _json(request, {**body, "merge": report})


@routes.get("/api/v1/carts/{cart_id}")
@requires(*STAFF_ROLES)
async def cart_by_id(request: web.Request) -> web.Response:
    """Any cart by its id, for support staff."""
    held = await request.app[CARTS].get(request.match_info["cart_id"])
    if held is None or not held.cart.exists:
        raise CartNotFound(f"no cart {request.match_info['cart_id']}")
    return await _answer(request, held)


async def _required(request: web.Request) -> Held:
    held = await _current(request)
    if held is None:
        raise LineNotFound("the cart is empty")
    return held
