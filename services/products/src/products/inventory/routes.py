"""HTTP handlers of inventory: staff read and move stock; services reserve, release and commit it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from products.inventory import schemas
from products.inventory.errors import SkuNotFound
from products.inventory.keys import INVENTORY
from products.inventory.ledger import movement_json, untracked_json
from products.inventory.service import Inventory
from shopkit.answers import json_response
from shopkit.auth import STAFF_ROLES as STAFF
from shopkit.auth import principal, requires
from shopkit.headers import CACHE_CONTROL, LOCATION
from shopkit.idempotency import idempotent, operation_id
from shopkit.pagination import encode_cursor
from shopkit.schemas import load_body, load_query, read_json, validate

routes = web.RouteTableDef()
NO_STORE = {CACHE_CONTROL: "no-store"}


def _inventory(request: web.Request) -> Inventory:
    return request.app[INVENTORY]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(data, status=status, headers={**NO_STORE, **(headers or {})})


def _sku(request: web.Request) -> str:
    sku = request.match_info["sku"]
    if schemas.SKU_SHAPE.fullmatch(sku) is None:
        raise SkuNotFound(f"no product has the SKU {sku!r}")
    return sku


def _request_key(request: web.Request) -> str | None:
    """Names the ledger event of the request (from its Idempotency-Key, caller, path and body), so a
    retry whose first answer was lost records the movement once, and a reused key never meets it."""
    return operation_id(request)


async def _conclusion(request: web.Request) -> schemas.Conclusion:
    # The body is optional: an empty one means "no reason given".
    return validate(schemas.ConclusionSchema(), await read_json(request))  # type: ignore[no-any-return]


# --- staff


@routes.get("/api/v1/inventory/{sku}")
@requires("staff", "admin", "service")
async def stock_level(request: web.Request) -> web.Response:
    """A SKU's on hand, reserved and available counts (untracked SKUs are always available)."""
    sku = _sku(request)
    inventory = _inventory(request)
    if not await inventory.tracked(sku):
        return _json(untracked_json(sku))
    return _json((await inventory.level(sku)).to_json())


@routes.get("/api/v1/inventory/{sku}/movements")
@requires(*STAFF)
async def stock_movements(request: web.Request) -> web.Response:
    """The SKU's ledger, newest first: every movement with who, why, when and the resulting counts."""
    sku = _sku(request)
    query = load_query(request, schemas.MovementQuery())
    inventory = _inventory(request)
    await inventory.tracked(sku)
    events, older = await inventory.movements(sku, query["limit"], query["cursor"])
    return _json(
        {
            "items": [movement_json(event) for event in events],
            "next_cursor": encode_cursor(older) if older is not None else None,
        }
    )


@routes.post("/api/v1/inventory/{sku}/receipts")
@requires(*STAFF)
@idempotent(required=True)
async def receive_stock(request: web.Request) -> web.Response:
    """Record goods received (Idempotency-Key required)."""
    sku = _sku(request)
    body: schemas.Receipt = await load_body(request, schemas.ReceiptSchema())
    event = await _inventory(request).receive(
        sku, body.quantity, principal(request).subject, body.reason, _request_key(request)
    )
    return _json(movement_json(event), status=201)


@routes.post("/api/v1/inventory/{sku}/adjustments")
@requires(*STAFF)
@idempotent(required=True)
async def adjust_stock(request: web.Request) -> web.Response:
    """Correct the count by a signed delta (Idempotency-Key required); never below what is reserved."""
    sku = _sku(request)
    body: schemas.Adjustment = await load_body(request, schemas.AdjustmentSchema())
    event = await _inventory(request).adjust(
        sku, body.delta, principal(request).subject, body.reason, _request_key(request)
    )
    return _json(movement_json(event), status=201)


# --- services (the gateway never routes /internal/)


def _reservation_path(order_id: str) -> str:
    return f"/internal/inventory/reservations/{order_id}"


@routes.post("/internal/inventory/reservations")
@requires("service")
async def reserve_stock(request: web.Request) -> web.Response:
    """Hold every line of an order or none: 201 held, 200 for a repeat, 409 naming the short SKUs."""
    body: schemas.ReservationRequest = await load_body(request, schemas.ReservationSchema())
    reservation, made = await _inventory(request).reserve(
        body.order_id, body.lines, principal(request).subject, body.ttl_seconds
    )
    return _json(
        reservation.to_json(),
        status=201 if made else 200,
        headers={LOCATION: _reservation_path(reservation.order_id)},
    )


@routes.get("/internal/inventory/reservations/{order_id}")
@requires("service")
async def get_reservation(request: web.Request) -> web.Response:
    """An order's reservation: its lines, state and expiry."""
    reservation = await _inventory(request).reservation(request.match_info["order_id"])
    return _json(reservation.to_json())


@routes.post("/internal/inventory/reservations/{order_id}/release")
@requires("service")
async def release_reservation(request: web.Request) -> web.Response:
    """Give an unpaid order's stock back (idempotent; 409 once committed)."""
    body = await _conclusion(request)
    await _inventory(request).release(
        request.match_info["order_id"], principal(request).subject, body.reason
    )
    return web.Response(status=204)


@routes.post("/internal/inventory/reservations/{order_id}/commit")
@requires("service")
async def commit_reservation(request: web.Request) -> web.Response:
    """A paid order's stock leaves the shelf (idempotent; 409 once released or expired)."""
    body = await _conclusion(request)
    await _inventory(request).commit(
        request.match_info["order_id"], principal(request).subject, body.reason
    )
    return web.Response(status=204)
