"""What the notifications tests share: the service as publishers, customers and staff see it,
and the mail that reached Mailpit."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from nats.aio.client import Client as NatsClient

from shopkit import broker, clock
from shopkit.events import Event, encode
from shopkit.testing.plugin import MailServer
from shopkit.testing.tokens import TokenFactory

Client = TestClient[Any, Any]
API = "/api/v1/notifications"


def address(name: str = "ada") -> str:
    """An address no other test writes to, so Mailpit's search finds only this test's mail."""
    return f"{name}.{uuid.uuid4().hex[:10]}@example.com"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@dataclass
class Mailbox:
    """Mailpit's API: what arrived, for whom."""

    server: MailServer

    async def _get(self, path: str, **params: str) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.get(self.server.api_url + path, params=params) as answer,
        ):
            assert answer.status == 200, await answer.text()
            return await answer.json()

    async def to(self, recipient: str) -> list[dict[str, Any]]:
        found = await self._get("/api/v1/search", query=f'to:"{recipient}"')
        return list(found["messages"])

    async def message(self, message_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._get(f"/api/v1/message/{message_id}")
        return found

    async def headers(self, message_id: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = await self._get(f"/api/v1/message/{message_id}/headers")
        return found

    async def arrived(
        self, recipient: str, count: int = 1, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """The messages to `recipient`, once `count` arrived; then a little longer, so one too many shows."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self.to(recipient)
            if len(found) >= count or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        return await self.to(recipient)


@dataclass
class Notifications:
    """One instance of the service, and the streams its publishers write."""

    client: Client
    tokens: TokenFactory
    streams: dict[str, str]  # publisher -> its stream name in this test

    def staff(self) -> dict[str, str]:
        return self.tokens.header("staff-1", "staff")

    def customer(self, user_id: str) -> dict[str, str]:
        return self.tokens.header(user_id, "customer")

    async def publish(
        self,
        nats: NatsClient,
        publisher: str,
        event_type: str,
        data: dict[str, Any],
        *,
        event_id: str | None = None,
        message_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> str:
        """Publish as `publisher` would; the event's id. `message_id` differs from the event id to
        get past JetStream's duplicate window, as a relay republishing after two hours would."""
        service = self.streams[publisher]
        js = nats.jetstream()
        await broker.ensure_stream(js, service)
        event = Event(
            id=event_id or uuid.uuid4().hex,
            stream_id=f"{publisher}-stream",
            seq=1,
            type=event_type,
            data=data,
            occurred_at=occurred_at or clock.now(),
        )
        await js.publish(
            broker.subject(service, event_type),
            encode(event),
            stream=broker.stream_name(service),
            headers={"Nats-Msg-Id": message_id or event.id},
        )
        return event.id

    async def deliveries(self, **query: str) -> list[dict[str, Any]]:
        answer = await self.client.get(f"{API}/deliveries", params=query, headers=self.staff())
        assert answer.status == 200, await answer.text()
        body: dict[str, Any] = await answer.json()
        return list(body["items"])

    async def settled(
        self, recipient: str, count: int = 1, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """The recipient's deliveries once `count` are in a final status."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self.deliveries(recipient=recipient)
            final = [x for x in found if x["status"] not in ("pending", "sending")]
            if len(final) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.1)


def placed(
    order_id: str, email: str, *, user_id: str | None = None, currency: str = "EUR"
) -> dict[str, Any]:
    """An `order.placed` as orders publishes it: two lines, shipping and tax."""
    return {
        "order_id": order_id,
        "number": "SO-" + order_id[-6:].upper(),
        "cart_id": "cart-1",
        "user_id": user_id,
        "guest_key": None,
        "email": email,
        "currency": currency,
        "lines": [
            {
                "sku": "TEE-BLK-M",
                "title": "Black tee",
                "quantity": 2,
                "unit_price": 1999,
                "total": 3998,
                "tax": 638,
            },
            {
                "sku": "MUG-01",
                "title": "Mug",
                "quantity": 1,
                "unit_price": 1250,
                "total": 1250,
                "tax": 200,
            },
        ],
        "shipping": {
            "method": "standard",
            "name": "Standard",
            "amount": 495,
            "tax": 79,
            "address": {},
        },
        "subtotal": 5248,
        "shipping_total": 495,
        "tax_total": 917,
        "total": 5743,
        "tax_inclusive": True,
        "note": None,
        "payment_intent_id": "pi_1",
        "created_at": clock.rfc3339(clock.now()),
        "expires_at": clock.rfc3339(clock.now()),
    }


def paid(order_id: str, email: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "number": "SO-" + order_id[-6:].upper(),
        "cart_id": "cart-1",
        "email": email,
        "currency": "EUR",
        "total": 5743,
        "lines": [{"sku": "TEE-BLK-M", "quantity": 2}, {"sku": "MUG-01", "quantity": 1}],
        "payment_intent_id": "pi_1",
        "actor": "stripe",
    }


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        await asyncio.sleep(0.1)
