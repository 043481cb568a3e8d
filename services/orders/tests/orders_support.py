"""What the orders tests share: a shop of real services, and the calls its customers, staff and
Stripe make."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from carts_support import Catalog, eventually
from nats.aio.client import Client as NatsClient

from shopkit.testing.bus import published
from shopkit.testing.stripe import StripeProxy, order_intent_event, sign_webhook
from shopkit.testing.tokens import TokenFactory

__all__ = ["ADDRESS", "Client", "Shop", "eventually"]

Client = TestClient[Any, Any]
ORDERS = "/api/v1/orders"
WEBHOOK = "/api/v1/payments/webhooks/stripe"
ADDRESS = {
    "recipient": "Ada Lovelace",
    "line1": "Unter den Linden 1",
    "city": "Berlin",
    "postal_code": "10117",
    "country": "DE",
}


@dataclass
class Shop:
    orders: Client
    carts: Client
    payments: Client
    catalog: Catalog
    tokens: TokenFactory
    stripe: StripeProxy
    webhook_secret: str
    nats: NatsClient
    names: dict[str, str]

    def customer(self, user_id: str | None = None) -> dict[str, str]:
        return self.tokens.header(user_id or "user-" + uuid.uuid4().hex[:8], "customer")

    @property
    def staff(self) -> dict[str, str]:
        return self.tokens.header("staff-1", "staff")

    # --- carts

    async def fill(self, headers: dict[str, str], lines: dict[str, int]) -> dict[str, str]:
        """Put `lines` in the caller's cart; the headers that reach it (a new guest's token)."""
        for sku, quantity in lines.items():
            response = await self.carts.post(
                "/api/v1/carts/current/lines",
                json={"sku": sku, "quantity": quantity},
                headers=headers,
            )
            assert response.status in (200, 201), await response.text()
            if "X-Cart-Token" in response.headers:
                headers = {**headers, "X-Cart-Token": response.headers["X-Cart-Token"]}
        return headers

    async def cart(self, headers: dict[str, str]) -> dict[str, Any]:
        response = await self.carts.get("/api/v1/carts/current", headers=headers)
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def cart_free(self, headers: dict[str, str]) -> dict[str, Any]:
        """The cart once no order holds it (carts heard the order was paid or ended)."""

        async def check() -> dict[str, Any] | None:
            cart = await self.cart(headers)
            return cart if cart["checkout"] is None else None

        found: dict[str, Any] = await eventually(check, timeout=15)
        return found

    # --- orders

    async def place(
        self, headers: dict[str, str], key: str | None = None, **body: Any
    ) -> ClientResponse:
        payload = {"shipping_method": "standard", "shipping_address": ADDRESS, **body}
        # No users service here: the email is given, as a guest must and a customer may.
        payload.setdefault("email", "shopper@example.com")
        return await self.orders.post(
            ORDERS,
            json=payload,
            headers={**headers, "Idempotency-Key": key or uuid.uuid4().hex},
        )

    async def placed(self, headers: dict[str, str], **body: Any) -> dict[str, Any]:
        response = await self.place(headers, **body)
        assert response.status == 201, await response.text()
        return dict(await response.json())

    async def order(self, order_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = await self.orders.get(f"{ORDERS}/{order_id}", headers=headers or self.staff)
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def until(self, order_id: str, **wanted: str) -> dict[str, Any]:
        """The order once each named field has its wanted value."""

        async def check() -> dict[str, Any] | None:
            order = await self.order(order_id)
            return order if all(order[k] == v for k, v in wanted.items()) else None

        found: dict[str, Any] = await eventually(check, timeout=15)
        return found

    async def act(
        self, order_id: str, action: str, body: dict[str, Any] | None = None, **headers: str
    ) -> ClientResponse:
        return await self.orders.post(
            f"{ORDERS}/{order_id}/{action}", json=body or {}, headers={**self.staff, **headers}
        )

    # --- stock

    async def level(self, sku: str) -> dict[str, Any]:
        response = await self.catalog.products.get(
            f"/api/v1/inventory/{sku}", headers=self.catalog.staff
        )
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def settled(self, sku: str, on_hand: int) -> dict[str, Any]:
        """The SKU's level once nothing is reserved and `on_hand` is as wanted."""

        async def check() -> dict[str, Any] | None:
            level = await self.level(sku)
            return level if level["reserved"] == 0 and level["on_hand"] == on_hand else None

        found: dict[str, Any] = await eventually(check, timeout=15)
        return found

    # --- Stripe

    async def confirm(self, payment_intent_id: str) -> None:
        """The customer confirms the PaymentIntent with Stripe (stripe-mock, through the proxy)."""
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{self.stripe.url}/v1/payment_intents/{payment_intent_id}/confirm",
                data={"payment_method": "pm_card_visa"},
                headers={"Authorization": "Bearer sk_test_123"},
            ) as response,
        ):
            assert response.status == 200, await response.text()

    async def webhook(
        self,
        event_type: str,
        order: dict[str, Any],
        event_id: str | None = None,
        created: int | None = None,
        **fields: Any,
    ) -> ClientResponse:
        """Stripe's webhook about the order's PaymentIntent, signed as Stripe signs it."""
        body = order_intent_event(event_type, order, event_id=event_id, created=created, **fields)
        return await self.payments.post(
            WEBHOOK,
            data=body,
            headers={
                "Stripe-Signature": sign_webhook(body, self.webhook_secret),
                "Content-Type": "application/json",
            },
        )

    async def pay(self, order: dict[str, Any]) -> dict[str, Any]:
        """Confirm with Stripe, deliver the succeeded webhook, and wait for the order to be paid."""
        await self.confirm(order["payment"]["payment_intent_id"])
        response = await self.webhook("payment_intent.succeeded", order)
        assert response.status == 200, await response.text()
        return await self.until(order["id"], payment_status="paid")

    # --- the bus

    async def published(self, service: str, event_type: str, order_id: str) -> list[dict[str, Any]]:
        """Every `event_type` a service published about the order (read from JetStream)."""
        return await published(self.nats, self.names[service], event_type, order_id=order_id)
