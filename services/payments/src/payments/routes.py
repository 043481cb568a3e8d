"""Public routes of the payments API: Stripe's webhooks, and any payment for staff."""

from __future__ import annotations

import json

import stripe
from aiohttp import web

from payments import stripe_events, view
from payments.errors import InvalidSignature, PaymentNotFound
from payments.keys import PAYMENTS, SETTINGS
from shopkit.answers import json_response
from shopkit.auth import STAFF_ROLES, public, requires
from shopkit.headers import CACHE_CONTROL

routes = web.RouteTableDef()
SIGNATURE = "Stripe-Signature"
# Stripe's own default: a signature older than this is a replay.
TOLERANCE = 300


@routes.post("/api/v1/payments/webhooks/stripe")
@public
async def stripe_webhook(request: web.Request) -> web.Response:
    """Stripe's events: verified against the raw body's signature, each acted on once."""
    payload = await request.read()
    secret = request.app[SETTINGS].stripe_webhook_secret.value
    try:
        stripe.Webhook.construct_event(
            payload, request.headers.get(SIGNATURE), secret, tolerance=TOLERANCE
        )
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, ValueError):
        raise InvalidSignature("the body does not verify against Stripe-Signature") from None
    if not stripe_events.is_event(event):
        raise InvalidSignature("a signed body that is no Stripe event")
    outcome = await stripe_events.handle(request.app[PAYMENTS], event)
    return json_response({"received": True, "outcome": outcome})


@routes.get("/api/v1/payments/{order_id}")
@requires(*STAFF_ROLES)
async def payment_by_order(request: web.Request) -> web.Response:
    """An order's payment, its refunds and disputes, for staff."""
    payment, _ = await request.app[PAYMENTS].load(request.match_info["order_id"])
    if not payment.exists:
        raise PaymentNotFound(f"no payment for order {request.match_info['order_id']}")
    return json_response(view.present(payment), headers={CACHE_CONTROL: "private, no-store"})
