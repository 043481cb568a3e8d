"""A shopper's journey through the gateway, run inside the cluster from a pod of a service image
(the standard library only): staff publish a product with stock, a customer finds it, puts two
in the cart, orders, pays at Stripe (stripe-mock), Stripe's signed webhook arrives, the order is
paid. Prints one JSON line of what happened; exits 1 naming the step that failed.

    python3 journey.py GATEWAY_URL STRIPE_URL ADMIN_EMAIL ADMIN_PASSWORD WEBHOOK_SECRET
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from typing import Any


def call(
    method: str,
    url: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, text = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text.decode(errors="replace")


def expect(step: str, answer: tuple[int, Any], *statuses: int) -> Any:
    status, body = answer
    if status not in statuses:
        sys.exit(f"{step}: {status} {body}")
    return body


def eventually(step: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while (found := check()) is None:
        if time.monotonic() > deadline:
            sys.exit(f"{step}: not within {timeout:.0f} s")
        time.sleep(0.5)
    return found


def journey(
    gateway: str, stripe: str, admin: tuple[str, str], webhook_secret: str
) -> dict[str, Any]:
    api = gateway.rstrip("/") + "/api/v1"
    login = {"email": admin[0], "password": admin[1]}
    token = expect("staff sign in", call("POST", f"{api}/auth/login", login), 200)["access_token"]
    staff = {"Authorization": f"Bearer {token}"}

    tag = uuid.uuid4().hex[:8]
    slug, sku = f"teapot-{tag}", f"POT-{tag}"
    product = {
        "slug": slug,
        "name": f"Teapot {tag}",
        "status": "published",
        "variants": [{"sku": sku, "price": {"amount": 2450, "currency": "EUR"}}],
    }
    expect("publish a product", call("POST", f"{api}/products", product, staff), 201)
    receipt = {"quantity": 5, "reason": "delivery"}
    headers = {**staff, "Idempotency-Key": uuid.uuid4().hex}
    expect("receive stock", call("POST", f"{api}/inventory/{sku}/receipts", receipt, headers), 201)

    credentials = {"email": f"shopper-{tag}@example.com", "password": "correct horse battery"}
    expect("register", call("POST", f"{api}/auth/register", {**credentials, "name": "Ada"}), 201)
    token = expect("sign in", call("POST", f"{api}/auth/login", credentials), 200)["access_token"]
    shopper = {"Authorization": f"Bearer {token}"}

    def found() -> Any:
        status, body = call(
            "GET", f"{api}/search?" + urllib.parse.urlencode({"q": f"teapot {tag}"})
        )
        return body["items"] if status == 200 and body["items"] else None

    hits = eventually("find it by search", found)
    line = {"sku": sku, "quantity": 2}
    expect("add to cart", call("POST", f"{api}/carts/current/lines", line, shopper), 200, 201)
    address = {"recipient": "Ada", "line1": "Unter den Linden 1", "city": "Berlin"}
    address |= {"postal_code": "10117", "country": "DE"}
    place = {"shipping_method": "standard", "shipping_address": address}
    headers = {**shopper, "Idempotency-Key": uuid.uuid4().hex}
    order = expect("place the order", call("POST", f"{api}/orders", place, headers), 201)

    intent = order["payment"]["payment_intent_id"]
    confirm = urllib.parse.urlencode({"payment_method": "pm_card_visa"}).encode()
    stripe_headers = {"Authorization": "Bearer sk_test_123"}
    stripe_headers["Content-Type"] = "application/x-www-form-urlencoded"
    url = f"{stripe.rstrip('/')}/v1/payment_intents/{intent}/confirm"
    expect("pay at Stripe", call("POST", url, headers=stripe_headers, raw=confirm), 200)
    event = {
        "id": "evt_" + uuid.uuid4().hex[:24],
        "object": "event",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": intent,
                "object": "payment_intent",
                "amount": order["total"]["amount"],
                "amount_received": order["total"]["amount"],
                "currency": order["currency"].lower(),
                "status": "succeeded",
                "metadata": {"order_id": order["id"]},
            }
        },
    }
    body = json.dumps(event).encode()
    signed_at = int(time.time())
    mac = hmac.new(webhook_secret.encode(), f"{signed_at}.".encode() + body, hashlib.sha256)
    webhook = {"Stripe-Signature": f"t={signed_at},v1={mac.hexdigest()}"}
    webhook["Content-Type"] = "application/json"
    url = f"{api}/payments/webhooks/stripe"
    expect("Stripe's webhook", call("POST", url, headers=webhook, raw=body), 200)

    def paid() -> Any:
        current = expect(
            "read the order", call("GET", f"{api}/orders/{order['id']}", None, shopper), 200
        )
        return current if current["payment_status"] == "paid" else None

    done = eventually("the order paid", paid)
    return {"order": order["id"], "status": done["status"], "payment_status": done["payment_status"],
            "total": done["total"], "found": hits[0]["slug"] == slug}  # fmt: skip


if __name__ == "__main__":
    gateway, stripe, email, password, secret = sys.argv[1:6]
    print(json.dumps(journey(gateway, stripe, (email, password), secret)))
