"""What the carts tests share: the catalog they price from, and a shopper's calls to the carts API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from shopkit.testing.tokens import TokenFactory

Client = TestClient[Any, Any]
CURRENT = "/api/v1/carts/current"
LINES = "/api/v1/carts/current/lines"


class Catalog:
    """Products with stock, put in the real products service by its staff."""

    def __init__(self, products: Client, tokens: TokenFactory) -> None:
        self.products = products
        self.staff = tokens.header("staff-1", "staff")

    async def add(
        self, skus: dict[str, int], *, stock: int | None = 100, currency: str = "EUR"
    ) -> dict[str, Any]:
        """A published product with a variant per SKU at `skus[sku]` minor units, and `stock`
        units of each (None: stock not tracked)."""
        tag = uuid.uuid4().hex[:8]
        variants = [
            {
                "sku": sku,
                "price": {"amount": amount, "currency": currency},
                "attributes": {"size": str(index)},
                **({"track_stock": False} if stock is None else {}),
            }
            for index, (sku, amount) in enumerate(skus.items())
        ]
        body = {
            "slug": f"thing-{tag}",
            "name": f"Thing {tag}",
            "description": "A thing to buy.",
            "status": "published",
            "variants": variants,
        }
        response = await self.products.post("/api/v1/products", json=body, headers=self.staff)
        assert response.status == 201, await response.text()
        created = dict(await response.json())
        for sku in skus if stock else []:
            await self.receive(sku, stock or 0)
        created["etag"] = response.headers["ETag"]
        return created

    async def receive(self, sku: str, quantity: int) -> None:
        response = await self.products.post(
            f"/api/v1/inventory/{sku}/receipts",
            json={"quantity": quantity, "reason": "delivery"},
            headers={**self.staff, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status == 201, await response.text()

    async def change(self, product: dict[str, Any], **changes: Any) -> dict[str, Any]:
        response = await self.products.patch(
            f"/api/v1/products/{product['id']}",
            json=changes,
            headers={**self.staff, "If-Match": product["etag"]},
        )
        assert response.status == 200, await response.text()
        changed = dict(await response.json())
        changed["etag"] = response.headers["ETag"]
        return changed


class Shop:
    """One carts instance, and the calls a shopper (a guest or a signed-in user) makes to it."""

    def __init__(self, client: Client, tokens: TokenFactory) -> None:
        self.client = client
        self.tokens = tokens

    def user(self, user_id: str, *roles: str) -> dict[str, str]:
        return self.tokens.header(user_id, *(roles or ("customer",)))

    async def call(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> ClientResponse:
        return await self.client.request(method, path, headers=headers or {}, **kwargs)

    async def add(
        self, sku: str, quantity: int = 1, headers: dict[str, str] | None = None, **extra: Any
    ) -> ClientResponse:
        return await self.call(
            "POST", LINES, headers=headers, json={"sku": sku, "quantity": quantity, **extra}
        )

    async def cart(self, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = await self.call("GET", CURRENT, headers=headers)
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def guest(self, sku: str, quantity: int = 1) -> dict[str, str]:
        """A new guest cart holding `quantity` of `sku`: the headers that open it."""
        response = await self.add(sku, quantity)
        assert response.status == 201, await response.text()
        return {"X-Cart-Token": response.headers["X-Cart-Token"]}


def quantities(cart: dict[str, Any]) -> dict[str, int]:
    return {line["sku"]: line["quantity"] for line in cart["lines"]}


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `check` (async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
