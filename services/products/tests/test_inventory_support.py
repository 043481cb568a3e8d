"""Helpers shared by the inventory tests: inventory served on an app of its own, and verbs over it.

The app is the kit's `build_app` with the inventory context, its routes and the relay, and SKUs from a
dict instead of the catalog: these tests need no OpenSearch and prove inventory alone. The full
products app is exercised by `test_app.py`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from products_support import Roles

from products.inventory import routes as inventory_routes
from products.inventory.context import inventory_context
from products.inventory.keys import INVENTORY
from products.inventory.service import Inventory
from products.keys import SETTINGS
from products.settings import ProductsSettings
from shopkit import relay
from shopkit.app import build_app
from shopkit.settings import load
from shopkit.testing.tokens import TokenFactory

Client = TestClient[Any, Any]
Start = Callable[..., Awaitable[Client]]
# Tracked unless False; GIFT-CARD is a SKU whose stock is not counted.
SKUS: Mapping[str, bool] = {"TEE-S": True, "TEE-M": True, "TEE-L": True, "GIFT-CARD": False}


class SkuTable:
    """A SKU directory from a dict: SKU to whether it tracks stock (every SKU is its own product)."""

    def __init__(self, skus: Mapping[str, bool]) -> None:
        self.skus = skus

    async def product_id_for_sku(self, sku: str) -> str | None:
        return sku if sku in self.skus else None

    async def tracks_stock(self, sku: str) -> bool | None:
        return self.skus.get(sku)


def inventory_app(
    settings: ProductsSettings, tokens: TokenFactory, skus: Mapping[str, bool] = SKUS
) -> web.Application:
    app = build_app(settings, settings_key=SETTINGS, keys=tokens.keys())
    directory = SkuTable(skus)
    app.cleanup_ctx.append(inventory_context(lambda _app: directory))
    app.cleanup_ctx.append(relay.relay_ctx())
    app.router.add_routes(inventory_routes.routes)
    return app


def starter(
    serve: Callable[[web.Application], Awaitable[Client]],
    service_env: dict[str, str],
    tokens: TokenFactory,
) -> Start:
    """Each call starts one more instance on the same database (several make a multi-instance shop).

    The instances of one test share a service name of their own, so what their relay publishes
    (thousands of stock events over the run) lands in a stream no other test consumes."""
    service = f"products-{uuid.uuid4().hex[:8]}"

    async def start(**overrides: str) -> Client:
        env = {**service_env, "SERVICE_NAME": service, **overrides}
        return await serve(inventory_app(load(ProductsSettings, env), tokens))

    return start


def service_of(client: Client) -> str:
    return str(client.server.app[SETTINGS].service_name)


def inventory_of(client: Client) -> Inventory:
    return client.server.app[INVENTORY]


def new_order() -> str:
    return "order-" + uuid.uuid4().hex[:12]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll `check` until it holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.05)


class Stock:
    """Small verbs over one instance, so each test reads as its scenario."""

    def __init__(self, client: Client, roles: Roles) -> None:
        self.client, self.roles = client, roles

    async def receive(self, sku: str, quantity: int, key: str | None = None) -> dict[str, Any]:
        response = await self.client.post(
            f"/api/v1/inventory/{sku}/receipts",
            json={"quantity": quantity, "reason": "delivery"},
            headers={**self.roles.staff, "Idempotency-Key": key or uuid.uuid4().hex},
        )
        assert response.status == 201, await response.text()
        return dict(await response.json())

    async def adjust(self, sku: str, delta: int, reason: str = "recount") -> Any:
        return await self.client.post(
            f"/api/v1/inventory/{sku}/adjustments",
            json={"delta": delta, "reason": reason},
            headers={**self.roles.staff, "Idempotency-Key": uuid.uuid4().hex},
        )

    async def level(self, sku: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/inventory/{sku}", headers=self.roles.staff)
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def counts(self, sku: str) -> tuple[int, int, int]:
        level = await self.level(sku)
        return level["on_hand"], level["reserved"], level["available"]

    async def reserve(
        self, order_id: str, lines: Mapping[str, int], ttl_seconds: int | None = None
    ) -> Any:
        body: dict[str, Any] = {
            "order_id": order_id,
            "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines.items()],
        }
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        return await self.client.post(
            "/internal/inventory/reservations", json=body, headers=self.roles.service
        )

    async def conclude(self, order_id: str, action: str) -> Any:
        """Commit or release the order's reservation (`action`), as orders would."""
        return await self.client.post(
            f"/internal/inventory/reservations/{order_id}/{action}", headers=self.roles.service
        )

    async def reservation(self, order_id: str) -> dict[str, Any]:
        response = await self.client.get(
            f"/internal/inventory/reservations/{order_id}", headers=self.roles.service
        )
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def movements(self, sku: str, limit: int = 100) -> list[dict[str, Any]]:
        """The whole ledger, oldest first, read page by page."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
            response = await self.client.get(
                f"/api/v1/inventory/{sku}/movements", params=params, headers=self.roles.staff
            )
            assert response.status == 200, await response.text()
            page = await response.json()
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return list(reversed(items))

    async def assert_ledger_adds_up(self, sku: str) -> list[dict[str, Any]]:
        """The ledger's changes sum to the levels, with no gap, and available never went below 0."""
        ledger = await self.movements(sku)
        on_hand, reserved, available = await self.counts(sku)
        assert [m["seq"] for m in ledger] == list(range(1, len(ledger) + 1))
        assert sum(m["on_hand_change"] for m in ledger) == on_hand
        assert sum(m["reserved_change"] for m in ledger) == reserved
        running = (0, 0)
        for movement in ledger:
            running = (
                running[0] + movement["on_hand_change"],
                running[1] + movement["reserved_change"],
            )
            assert running == (movement["on_hand"], movement["reserved"])
            assert movement["available"] == movement["on_hand"] - movement["reserved"] >= 0
        assert available == on_hand - reserved >= 0
        return ledger
