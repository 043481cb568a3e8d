"""HTTP handlers of the orders API: placing an order, reading and listing orders, and moving them."""

from __future__ import annotations

from aiohttp import web

from orders import lifecycle, listing
from orders.checkout import Caller
from orders.errors import OrderNotFound
from orders.keys import CHECKOUT, ORDERS, RATES, UPSTREAMS
from orders.model import Order, OrderStatus
from orders.orders import Changed
from orders.schemas import (
    CancelSchema,
    NoteSchema,
    OrderQuery,
    PlaceOrderSchema,
    RefundSchema,
    ShippingQuery,
    ShipSchema,
)
from orders.view import present
from shopkit.answers import json_response
from shopkit.auth import (
    STAFF_ROLES,
    optional_principal,
    principal,
    public,
    requires,
    signed_in_or_not,
)
from shopkit.headers import CACHE_CONTROL, CART_TOKEN, ETAG, LOCATION
from shopkit.idempotency import idempotent, operation_id, retry_id
from shopkit.pagination import encode_cursor
from shopkit.schemas import load_body, load_query, read_json, validate
from shopkit.versions import etag

routes = web.RouteTableDef()
NO_STORE = "private, no-store"


def _staff(request: web.Request) -> bool:
    caller = optional_principal(request)
    return caller is not None and caller.has_any(*STAFF_ROLES)


def _caller(request: web.Request) -> Caller:
    user = optional_principal(request)
    return Caller.of(user.subject if user is not None else None, request.headers)


def _answer(
    request: web.Request, order: Order, status: int = 200, client_secret: str | None = None
) -> web.Response:
    body = present(order, staff=_staff(request), client_secret=client_secret)
    headers = {ETAG: etag(order.version), CACHE_CONTROL: NO_STORE}
    if status == 201:
        headers[LOCATION] = f"/api/v1/orders/{order.id}"
    return json_response(body, status=status, headers=headers)


async def _visible(request: web.Request) -> Order:
    """The order of the path, if the caller may see it: its customer (or guest, by their cart
    token), or staff. Anyone else gets the same 404 as for an order that does not exist."""
    order_id = request.match_info["order_id"]
    order = await request.app[ORDERS].get(order_id)
    if order is None:
        raise OrderNotFound(f"no order {order_id}")
    if _staff(request):
        return order
    user = optional_principal(request)
    token = request.headers.get(CART_TOKEN)
    caller = Caller(user.subject if user else None, {CART_TOKEN: token} if token else {})
    if not caller.owns(order):
        raise OrderNotFound(f"no order {order_id}")
    return order


@routes.post("/api/v1/orders")
@signed_in_or_not
@idempotent(required=True)
async def place_order(request: web.Request) -> web.Response:
    """Place an order from the caller's cart (Idempotency-Key required): 201 with the order and
    its PaymentIntent's client_secret; 200 with the cart's pending order when it has one."""
    body = await load_body(request, PlaceOrderSchema())
    order_id = operation_id(request)
    assert order_id is not None  # the key is required
    placed = await request.app[CHECKOUT].place(_caller(request), body, order_id)
    return _answer(request, placed.order, 201 if placed.made else 200, placed.client_secret)


@routes.get("/api/v1/orders")
async def list_orders(request: web.Request) -> web.Response:
    """A page of orders, newest first: staff see every order, a customer their own."""
    query = load_query(request, OrderQuery())
    store = request.app[ORDERS].store
    staff = _staff(request)
    if staff:
        found, position = await listing.of_staff(store, query)
    else:
        found, position = await listing.of_customer(store, principal(request).subject, query)
    return json_response(
        {
            "items": [present(order, staff=staff) for order in found],
            "next_cursor": encode_cursor(position) if position is not None else None,
        },
        headers={CACHE_CONTROL: NO_STORE},
    )


@routes.get("/api/v1/orders/shipping-methods")
@public
async def shipping_methods(request: web.Request) -> web.Response:
    """The shipping methods for a country and currency, with their price for a subtotal."""
    query = load_query(request, ShippingQuery())
    currency, subtotal = query["currency"], query["subtotal"]
    methods = request.app[RATES].methods(query["country"], currency)
    return json_response({"items": [m.to_json(currency, subtotal) for m in methods]})


@routes.get("/api/v1/orders/{order_id}")
@signed_in_or_not
async def get_order(request: web.Request) -> web.Response:
    """One order: its customer's (a guest's by their cart token) or, for staff, any."""
    order = await _visible(request)
    secret = None
    if order.status is OrderStatus.PENDING and not _staff(request):
        payment = await request.app[UPSTREAMS].payment(order.id)
        secret = payment.get("client_secret") if payment is not None else None
    return _answer(request, order, client_secret=secret)


async def _changed(request: web.Request, changed: Changed) -> web.Response:
    return _answer(request, changed.order)


@routes.post("/api/v1/orders/{order_id}/cancel")
@signed_in_or_not
@idempotent(required=False)
async def cancel_order(request: web.Request) -> web.Response:
    """Cancel: a customer while the order is unpaid; staff also once paid and not shipped (the
    payment is refunded in full)."""
    # The body is optional: none means no reason given.
    body = validate(CancelSchema(), await read_json(request))
    order = await _visible(request)
    staff = _staff(request)
    user = optional_principal(request)
    actor = user.subject if user is not None else "guest"
    reason = (body or {}).get("reason") or (
        "cancelled by staff" if staff else "cancelled by customer"
    )
    changed = await request.app[ORDERS].change(order, lifecycle.cancel(actor, staff, reason))
    await lifecycle.settle_watch(request.app[ORDERS], changed.order)
    return await _changed(request, changed)


@routes.post("/api/v1/orders/{order_id}/shipments")
@requires(*STAFF_ROLES)
@idempotent(required=False)
async def ship_order(request: web.Request) -> web.Response:
    """Ship a paid order: its carrier and tracking number."""
    body = await load_body(request, ShipSchema())
    order = await _visible(request)
    decision = lifecycle.ship(principal(request).subject, body["carrier"], body["tracking_number"])
    return await _changed(request, await request.app[ORDERS].change(order, decision))


@routes.post("/api/v1/orders/{order_id}/delivery")
@requires(*STAFF_ROLES)
@idempotent(required=False)
async def deliver_order(request: web.Request) -> web.Response:
    """Record that a shipped order arrived: it is completed."""
    order = await _visible(request)
    decision = lifecycle.deliver(principal(request).subject)
    return await _changed(request, await request.app[ORDERS].change(order, decision))


@routes.post("/api/v1/orders/{order_id}/refunds")
@requires(*STAFF_ROLES)
@idempotent(required=True)
async def refund_order(request: web.Request) -> web.Response:
    """Refund part or all of what was paid (Idempotency-Key required); the refund shows as
    succeeded once Stripe reports it."""
    body = await load_body(request, RefundSchema())
    order = await _visible(request)
    refund_id = operation_id(request)
    assert refund_id is not None
    actor = principal(request).subject
    decision = lifecycle.request_refund(actor, refund_id, body["amount"], body["reason"])
    # The order must allow it (a dry run of the decision); payments then decides, holding what
    # was paid and every refund; only a refund payments took is recorded on the order (a crash
    # in between: the retry finds it at payments, or its refund.succeeded records it anyway).
    decision(order)
    await request.app[UPSTREAMS].refund(order.id, refund_id, body["amount"], body["reason"])
    event_id = f"{order.id}:refund:{refund_id}"
    changed = await request.app[ORDERS].change(order, decision, event_id=event_id)
    return _answer(request, changed.order, 201)


@routes.post("/api/v1/orders/{order_id}/notes")
@requires(*STAFF_ROLES)
async def add_note(request: web.Request) -> web.Response:
    """A staff note on the order (Idempotency-Key optional: a retry adds it once)."""
    body = await load_body(request, NoteSchema())
    order = await _visible(request)
    note_id = await retry_id(request, order.id)
    decision = lifecycle.note(principal(request).subject, body["text"], note_id)
    changed = await request.app[ORDERS].change(order, decision, event_id=note_id)
    return _answer(request, changed.order, 201)
