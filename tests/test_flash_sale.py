"""The flash sale as one asyncio burst through the gateway: more buyers than units, none oversold."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import aiohttp
import pytest
from e2e_support import STRIPE_WEBHOOK_SECRET, admin_headers, expect_json
from test_checkout_e2e import ADDRESS, _product

from shopkit.testing.stripe import order_intent_event, sign_webhook

BUYERS = 500
UNITS = 300
# At most this many buyers in flight at once: a crowd, not a denial of service on two cores.
IN_FLIGHT = 64
SETTLED_WITHIN = 120.0
RETRIES = 20


def _slug(body: Any) -> str:
    return str(body.get("type", "")).rsplit("/", 1)[-1] if isinstance(body, dict) else ""


async def _post(
    session: aiohttp.ClientSession, url: str, outcomes: Counter[str], **kwargs: Any
) -> tuple[int, Any, str]:
    """POST as a client does under load: what failed on the server's side (5xx) is sent again
    (checkout and add under the same Idempotency-Key or cart: the same request); the status,
    body and cart token of the answer that settled it."""
    for _ in range(RETRIES):
        async with session.post(url, **kwargs) as r:
            body = await r.json(content_type=None)
            if r.status >= 500:
                outcomes["retried after a 5xx"] += 1
                await asyncio.sleep(0.5)
                continue
            return r.status, body, r.headers.get("X-Cart-Token", "")
    raise AssertionError(f"{url} kept failing: {body}")


async def _buy(
    gateway: str, session: aiohttp.ClientSession, sku: str, outcomes: Counter[str]
) -> None:
    """One guest: a unit in the cart, the order placed, Stripe's webhook that it was paid."""
    line = {"sku": sku, "quantity": 1}
    status, body, token = await _post(
        session, f"{gateway}/api/v1/carts/current/lines", outcomes, json=line
    )
    if status == 409 and _slug(body) == "insufficient-stock":
        outcomes["sold out at the cart"] += 1
        return
    assert status == 201, body
    key = uuid.uuid4().hex
    order = {
        "shipping_method": "standard",
        "shipping_address": ADDRESS,
        "email": f"flash-{key[:12]}@example.com",
    }
    headers = {"X-Cart-Token": token, "Idempotency-Key": key}
    for _ in range(RETRIES):
        status, placed, _ = await _post(
            session, f"{gateway}/api/v1/orders", outcomes, json=order, headers=headers
        )
        if status == 409 and _slug(placed) in ("checkout-in-progress", "request-in-flight"):
            await asyncio.sleep(0.1)
            continue
        if status == 409 and _slug(placed) == "checkout-abandoned":
            # The shop gave that checkout up (its steps kept failing): a new one, as it asks.
            headers = {**headers, "Idempotency-Key": uuid.uuid4().hex}
            continue
        break
    if status == 409 and _slug(placed) in ("insufficient-stock", "cart-not-ready"):
        outcomes["sold out at checkout"] += 1
        return
    assert status == 201, placed
    event = order_intent_event("payment_intent.succeeded", placed)
    signed = {"Stripe-Signature": sign_webhook(event, STRIPE_WEBHOOK_SECRET)}
    url = f"{gateway}/api/v1/payments/webhooks/stripe"
    status, answer, _ = await _post(
        session, url, outcomes, data=event, headers={**signed, "Content-Type": "application/json"}
    )
    assert status == 200, answer
    outcomes["bought"] += 1


# The platform's start (a session's first e2e test) and 1,500 requests on two shared cores.
@pytest.mark.timeout(600)
async def test_500_buyers_for_300_units_through_the_gateway_end_with_exactly_300_sold(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    # given a SKU with 300 units
    staff = await admin_headers(gateway, http)
    sku = await _product(gateway, http, staff, amount=1999, stock=UNITS)

    # when 500 guests try to buy one unit each, all at once
    outcomes: Counter[str] = Counter()
    in_flight = asyncio.Semaphore(IN_FLIGHT)

    async def buyer(crowd: aiohttp.ClientSession) -> None:
        async with in_flight:
            await _buy(gateway, crowd, sku, outcomes)

    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as crowd:
        await asyncio.gather(*(buyer(crowd) for _ in range(BUYERS)))

    # then exactly 300 bought, the rest were told it is sold out
    assert outcomes["bought"] == UNITS, outcomes
    retried = outcomes.pop("retried after a 5xx", 0)
    assert sum(outcomes.values()) == BUYERS, (outcomes, retried)
    # and, once the payments' effects have landed, every unit left the shelf once and none is held
    deadline = time.monotonic() + SETTLED_WITHIN
    while True:
        async with http.get(f"{gateway}/api/v1/inventory/{sku}", headers=staff) as r:
            level = await expect_json(r, 200)
        if level["reserved"] == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert (level["on_hand"], level["reserved"], level["available"]) == (0, 0, 0), level
