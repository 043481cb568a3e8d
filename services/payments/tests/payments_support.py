"""What the payments tests share: the service as orders and Stripe see it, and what it published."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient
from nats.aio.client import Client as NatsClient
from nats.js.api import ConsumerConfig, DeliverPolicy

from shopkit import broker, clock
from shopkit.events import Event, decode, encode
from shopkit.testing.stripe import sign_webhook, webhook_event
from shopkit.testing.tokens import TokenFactory

WEBHOOK_SECRET = "whsec_test_payments"
INTERNAL = "/internal/payments"
WEBHOOK = "/api/v1/payments/webhooks/stripe"
Client = TestClient[Any, Any]


@dataclass
class Shop:
    """The payments service as orders and Stripe see it."""

    client: Client
    tokens: TokenFactory
    service: str
    orders_service: str

    @property
    def orders(self) -> dict[str, str]:
        return self.tokens.header("orders", "service")

    async def create(self, order_id: str, amount: int = 2599, currency: str = "EUR", **more: Any):  # type: ignore[no-untyped-def]
        body = {"order_id": order_id, "amount": amount, "currency": currency, **more}
        return await self.client.post(INTERNAL, json=body, headers=self.orders)

    async def created(self, order_id: str, amount: int = 2599) -> dict[str, Any]:
        response = await self.create(order_id, amount)
        assert response.status in (200, 201), await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def payment(self, order_id: str) -> dict[str, Any]:
        response = await self.client.get(f"{INTERNAL}/{order_id}", headers=self.orders)
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def refund(self, order_id: str, refund_id: str, amount: int, reason: str = "asked"):  # type: ignore[no-untyped-def]
        return await self.client.post(
            f"{INTERNAL}/{order_id}/refunds",
            json={"refund_id": refund_id, "amount": amount, "reason": reason},
            headers=self.orders,
        )

    async def webhook(
        self,
        event_type: str,
        data_object: dict[str, Any],
        *,
        event_id: str | None = None,
        created: int | None = None,
        secret: str = WEBHOOK_SECRET,
        signed_at: int | None = None,
    ):  # type: ignore[no-untyped-def]
        payload = webhook_event(event_type, data_object, event_id=event_id, created=created)
        header = sign_webhook(payload, secret, timestamp=signed_at)
        return await self.client.post(
            WEBHOOK,
            data=payload,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )

    async def intent_event(
        self, event_type: str, order_id: str, intent_id: str, **fields: Any
    ) -> dict[str, Any]:
        status = {
            "payment_intent.succeeded": "succeeded",
            "payment_intent.processing": "processing",
            "payment_intent.payment_failed": "requires_payment_method",
            "payment_intent.canceled": "canceled",
        }[event_type]
        obj = {
            "id": intent_id,
            "object": "payment_intent",
            "status": status,
            "amount": 2599,
            "currency": "eur",
            "metadata": {"order_id": order_id},
            **fields.pop("object", {}),
        }
        response = await self.webhook(event_type, obj, **fields)
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def order_ended(self, nats_client: NatsClient, event_type: str, order_id: str) -> None:
        """orders publishes `order.cancelled` or `order.expired`."""
        js = nats_client.jetstream()
        await broker.ensure_stream(js, self.orders_service)
        event = Event(
            id=uuid.uuid4().hex,
            stream_id=f"order-{order_id}",
            seq=3,
            type=event_type,
            data={"order_id": order_id, "cart_id": "c1", "reason": "customer", "actor": "u1"},
            occurred_at=clock.now(),
        )
        await js.publish(
            broker.subject(self.orders_service, event_type),
            encode(event),
            stream=broker.stream_name(self.orders_service),
            headers={"Nats-Msg-Id": event.id},
        )

    async def published(
        self, nats_client: NatsClient, event_type: str, *, settle: float = 1.5
    ) -> list[Event]:
        """Every event of `event_type` payments published so far (waiting for the relay)."""
        js = nats_client.jetstream()
        await broker.ensure_stream(js, self.service)
        subscription = await js.pull_subscribe(
            broker.subject(self.service, event_type),
            stream=broker.stream_name(self.service),
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        found: list[Event] = []
        deadline = time.monotonic() + settle
        try:
            while time.monotonic() < deadline:
                try:
                    messages = await subscription.fetch(10, timeout=0.3)
                except Exception:  # nats' fetch timeout: nothing new yet
                    continue
                for message in messages:
                    found.append(decode(message.data))
                    await message.ack()
        finally:
            await subscription.unsubscribe()
        return found


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        await asyncio.sleep(0.05)


def order_id() -> str:
    return "ord_" + uuid.uuid4().hex[:12]


def payload_of(response_text: str) -> Any:
    return json.loads(response_text)
