"""Routes only orders calls (the gateway never routes /internal/): create, read and refund a payment."""

from __future__ import annotations

from aiohttp import web

from payments import creation, refunds, view
from payments.errors import PaymentNotFound
from payments.keys import PAYMENTS
from payments.schemas import CreatePaymentSchema, RefundSchema
from shopkit.answers import json_response
from shopkit.auth import requires
from shopkit.headers import CACHE_CONTROL
from shopkit.schemas import load_body

routes = web.RouteTableDef()
NO_STORE = {CACHE_CONTROL: "no-store"}


@routes.post("/internal/payments")
@requires("service")
async def create_payment(request: web.Request) -> web.Response:
    """Create the order's PaymentIntent (201), or answer the one it has (200)."""
    body = await load_body(request, CreatePaymentSchema)
    payment, secret, made = await creation.create(
        request.app[PAYMENTS], body["order_id"], body["amount"], body["currency"], body["email"]
    )
    return json_response(
        view.created(payment, secret), status=201 if made else 200, headers=NO_STORE
    )


@routes.get("/internal/payments/{order_id}")
@requires("service")
async def internal_payment(request: web.Request) -> web.Response:
    """The order's payment, its refunds and disputes, and the client secret."""
    payments = request.app[PAYMENTS]
    payment, _ = await payments.load(request.match_info["order_id"])
    if not payment.exists:
        raise PaymentNotFound(f"no payment for order {request.match_info['order_id']}")
    secret = await creation.client_secret(payments, payment)
    return json_response(view.present(payment, client_secret=secret), headers=NO_STORE)


@routes.post("/internal/payments/{order_id}/refunds")
@requires("service")
async def refund_payment(request: web.Request) -> web.Response:
    """Refund part or all of the payment (201), or answer the refund of this id (200)."""
    body = await load_body(request, RefundSchema)
    payment, made = await refunds.refund(
        request.app[PAYMENTS],
        request.match_info["order_id"],
        body["refund_id"],
        body["amount"],
        body["reason"],
    )
    refund = payment.refund(body["refund_id"])
    assert refund is not None  # the decision appended it, or found it
    return json_response(
        view.refunded(payment, refund), status=201 if made else 200, headers=NO_STORE
    )
