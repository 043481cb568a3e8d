"""Checkout end to end, through nginx: a cart becomes an order, Stripe's webhook pays it, stock and
cart follow by events, and staff ship, deliver and refund it. orders reaches carts, products,
payments and users through the gateway's internal listener, with its own service token."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from e2e_support import STRIPE_WEBHOOK_SECRET, admin_headers, expect_json
from nats.aio.client import Client as Nats

from shopkit.testing.bus import published
from shopkit.testing.stripe import order_intent_event, sign_webhook

ORDERS = "/api/v1/orders"
CART = "/api/v1/carts/current"
WEBHOOK = "/api/v1/payments/webhooks/stripe"
ADDRESS = {
    "recipient": "Ada Lovelace",
    "line1": "Unter den Linden 1",
    "city": "Berlin",
    "postal_code": "10117",
    "country": "DE",
}
T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 15) -> T:
    """Poll `check` until it answers something other than None."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await check()
        if found is not None:
            return found
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def _product(
    gateway: str, http: aiohttp.ClientSession, staff: dict[str, str], amount: int, stock: int
) -> str:
    """A published product with one SKU at `amount` cents and `stock` units: its SKU."""
    tag = uuid.uuid4().hex[:8]
    sku = f"MUG-{tag}"
    body = {
        "slug": f"mug-{tag}",
        "name": f"Mug {tag}",
        "status": "published",
        "variants": [{"sku": sku, "price": {"amount": amount, "currency": "EUR"}}],
    }
    async with http.post(f"{gateway}/api/v1/products", json=body, headers=staff) as r:
        await expect_json(r, 201)
    async with http.post(
        f"{gateway}/api/v1/inventory/{sku}/receipts",
        json={"quantity": stock, "reason": "delivery"},
        headers={**staff, "Idempotency-Key": uuid.uuid4().hex},
    ) as r:
        await expect_json(r, 201)
    return sku


async def _customer(gateway: str, http: aiohttp.ClientSession) -> tuple[dict[str, str], str]:
    """A new account, registered and signed in: its headers and email."""
    email = f"buyer-{uuid.uuid4().hex[:8]}@example.com"
    credentials = {"email": email, "password": "correct horse battery"}
    async with http.post(
        f"{gateway}/api/v1/auth/register", json={**credentials, "name": "Ada"}
    ) as r:
        await expect_json(r, 201)
    async with http.post(f"{gateway}/api/v1/auth/login", json=credentials) as r:
        token = (await expect_json(r, 200))["access_token"]
    return {"Authorization": f"Bearer {token}"}, email


async def _add(
    gateway: str, http: aiohttp.ClientSession, headers: dict[str, str], sku: str, quantity: int
) -> dict[str, str]:
    """Put `quantity` of `sku` in the caller's cart: the headers that reach it (a guest's token)."""
    body = {"sku": sku, "quantity": quantity}
    async with http.post(f"{gateway}{CART}/lines", json=body, headers=headers) as r:
        assert r.status in (200, 201), await r.text()
        if "X-Cart-Token" in r.headers:
            return {**headers, "X-Cart-Token": r.headers["X-Cart-Token"]}
    return headers


async def _place(
    gateway: str, http: aiohttp.ClientSession, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    payload = {"shipping_method": "standard", "shipping_address": ADDRESS, **body}
    async with http.post(
        f"{gateway}{ORDERS}",
        json=payload,
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    ) as r:
        order: dict[str, Any] = await expect_json(r, 201)
    return order


async def _order(
    gateway: str, http: aiohttp.ClientSession, order_id: str, headers: dict[str, str]
) -> dict[str, Any]:
    async with http.get(f"{gateway}{ORDERS}/{order_id}", headers=headers) as r:
        order: dict[str, Any] = await expect_json(r, 200)
    return order


async def _until(
    gateway: str,
    http: aiohttp.ClientSession,
    order_id: str,
    headers: dict[str, str],
    **wanted: str,
) -> dict[str, Any]:
    """The order once each named field has its wanted value."""

    async def check() -> dict[str, Any] | None:
        order = await _order(gateway, http, order_id, headers)
        return order if all(order[key] == value for key, value in wanted.items()) else None

    return await eventually(check)


async def _confirm(http: aiohttp.ClientSession, stripe_url: str, payment_intent_id: str) -> None:
    """The shopper confirms the PaymentIntent with Stripe (stripe-mock), as Stripe.js would."""
    async with http.post(
        f"{stripe_url}/v1/payment_intents/{payment_intent_id}/confirm",
        data={"payment_method": "pm_card_visa"},
        headers={"Authorization": "Bearer sk_test_123"},
    ) as r:
        assert r.status == 200, await r.text()


def _succeeded(order: dict[str, Any]) -> bytes:
    """Stripe's `payment_intent.succeeded` event about the order's PaymentIntent."""
    return order_intent_event("payment_intent.succeeded", order)


async def _webhook(
    gateway: str, http: aiohttp.ClientSession, body: bytes, signature: str | None = None
) -> aiohttp.ClientResponse:
    """Deliver a webhook to payments through the public gateway, as Stripe does."""
    headers = {
        "Stripe-Signature": signature or sign_webhook(body, STRIPE_WEBHOOK_SECRET),
        "Content-Type": "application/json; charset=utf-8",
    }
    async with http.post(f"{gateway}{WEBHOOK}", data=body, headers=headers) as r:
        await r.read()
        return r


async def _level(
    gateway: str, http: aiohttp.ClientSession, staff: dict[str, str], sku: str
) -> dict[str, Any]:
    async with http.get(f"{gateway}/api/v1/inventory/{sku}", headers=staff) as r:
        level: dict[str, Any] = await expect_json(r, 200)
    return level


async def _published(nats: Nats, service: str, event_type: str, order_id: str) -> list[Any]:
    """Every `event_type` the service published about the order, read back from JetStream."""
    return await published(nats, service, event_type, wait=0.5, order_id=order_id)


async def _pay(
    gateway: str,
    http: aiohttp.ClientSession,
    stripe_url: str,
    order: dict[str, Any],
    reader: dict[str, str],
) -> dict[str, Any]:
    """Confirm with Stripe, deliver the signed succeeded webhook through nginx: the paid order."""
    await _confirm(http, stripe_url, order["payment"]["payment_intent_id"])
    answer = await _webhook(gateway, http, _succeeded(order))
    assert answer.status == 200
    return await _until(gateway, http, order["id"], reader, payment_status="paid")


async def _assert_paid_effects(
    gateway: str,
    http: aiohttp.ClientSession,
    nats: Nats,
    staff: dict[str, str],
    shopper: dict[str, str],
    order_id: str,
    sku: str,
    on_hand: int,
) -> None:
    """The stock of the order committed, its lines out of the shopper's cart, its events out."""

    async def committed() -> dict[str, Any] | None:
        level = await _level(gateway, http, staff, sku)
        return level if (level["on_hand"], level["reserved"]) == (on_hand, 0) else None

    await eventually(committed)

    async def emptied() -> list[Any] | None:
        async with http.get(f"{gateway}{CART}", headers=shopper) as r:
            if r.status == 404:  # an emptied guest cart may be gone altogether
                return []
            lines = (await expect_json(r, 200))["lines"]
        return None if any(line["sku"] == sku for line in lines) else lines

    await eventually(emptied)

    published = (
        ("orders", "order.placed"),
        ("orders", "order.paid"),
        ("payments", "payment.succeeded"),
        ("products", "stock.committed"),
    )

    async def events() -> dict[str, int] | None:
        counts = {
            f"shop.{service}.{event_type}": len(
                await _published(nats, service, event_type, order_id)
            )
            for service, event_type in published
        }
        return counts if all(counts.values()) else None

    # each once, whatever the relays of two instances overlapping
    assert set((await eventually(events)).values()) == {1}


async def test_a_customer_orders_pays_through_stripe_and_staff_ship_deliver_and_refund_part(
    gateway: str, stripe_url: str, http: aiohttp.ClientSession, nats_client: Nats
) -> None:
    # given a registered customer with 2 mugs of a product with 10 in stock in their cart
    staff = await admin_headers(gateway, http)
    sku = await _product(gateway, http, staff, amount=1250, stock=10)
    customer, email = await _customer(gateway, http)
    await _add(gateway, http, customer, sku, 2)

    # when they place the order through the gateway
    order = await _place(gateway, http, customer)

    # then it is pending, its email the account's (orders asked users), its stock reserved
    assert (order["status"], order["payment_status"]) == ("pending", "awaiting")
    assert order["email"] == email
    assert order["payment"]["client_secret"]
    assert (await _level(gateway, http, staff, sku))["reserved"] == 2

    # when they confirm the payment with Stripe, and Stripe's webhook arrives through nginx
    paid = await _pay(gateway, http, stripe_url, order, customer)

    # then the order is placed and paid, the stock committed, the cart emptied, all published
    assert (paid["status"], paid["payment_status"]) == ("placed", "paid")
    await _assert_paid_effects(
        gateway, http, nats_client, staff, customer, order["id"], sku, on_hand=8
    )

    # when staff ship it, record its delivery and refund 5.00 of it
    base = f"{gateway}{ORDERS}/{order['id']}"
    shipment = {"carrier": "DHL", "tracking_number": "JD014600003828"}
    async with http.post(f"{base}/shipments", json=shipment, headers=staff) as r:
        await expect_json(r, 200)
    async with http.post(f"{base}/delivery", json={}, headers=staff) as r:
        await expect_json(r, 200)
    refund = {"amount": 500, "reason": "chipped handle"}
    refund_headers = {**staff, "Idempotency-Key": uuid.uuid4().hex}
    async with http.post(f"{base}/refunds", json=refund, headers=refund_headers) as r:
        await expect_json(r, 201)

    # then the order ends completed, delivered and partially refunded, as its customer sees it
    done = await _until(gateway, http, order["id"], customer, payment_status="partially_refunded")
    assert (done["status"], done["fulfilment_status"]) == ("completed", "delivered")
    assert done["refunded"] == {"amount": 500, "currency": "EUR"}


async def test_a_guest_orders_with_their_cart_token_and_only_that_token_reads_the_order(
    gateway: str, stripe_url: str, http: aiohttp.ClientSession, nats_client: Nats
) -> None:
    # given a guest whose cart (its token from the first write) holds 3 of a SKU with 5 in stock
    staff = await admin_headers(gateway, http)
    sku = await _product(gateway, http, staff, amount=2000, stock=5)
    guest = await _add(gateway, http, {}, sku, 3)
    assert "X-Cart-Token" in guest

    # when they place the order with their email, confirm it with Stripe and the webhook arrives
    order = await _place(gateway, http, guest, email="guest@example.com")
    paid = await _pay(gateway, http, stripe_url, order, guest)

    # then the order is theirs, paid, with the stock committed, the cart emptied, all published
    assert (paid["status"], paid["payment_status"]) == ("placed", "paid")
    assert paid["email"] == "guest@example.com"
    assert paid["customer_id"] is None
    await _assert_paid_effects(gateway, http, nats_client, staff, guest, order["id"], sku, 2)

    # and nobody else reads it: not without a token, not another guest, not a customer
    other_guest = await _add(gateway, http, {}, sku, 1)
    customer, _ = await _customer(gateway, http)
    for stranger in ({}, {"X-Cart-Token": other_guest["X-Cart-Token"]}, customer):
        async with http.get(f"{gateway}{ORDERS}/{order['id']}", headers=stranger) as r:
            assert r.status == 404, await r.text()
            assert r.content_type == "application/problem+json"


async def test_a_staff_listing_over_decades_is_refused_at_once(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    # given staff
    staff = await admin_headers(gateway, http)
    # when they list the orders placed since 2000 (`to` defaults to today)
    timeout = aiohttp.ClientTimeout(total=5)
    async with http.get(
        f"{gateway}{ORDERS}", params={"from": "2000-01-01"}, headers=staff, timeout=timeout
    ) as r:
        # then the range is refused at once: a staff list walks its days
        assert r.status == 422, await r.text()
