"""Carts end to end: a guest shops through the gateway, signs up, and finds the cart on every device."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
from e2e_support import admin_headers, expect_json

CURRENT = "/api/v1/carts/current"


async def _customer(gateway: str, http: aiohttp.ClientSession) -> tuple[dict[str, str], ...]:
    """A new account, signed in on two devices: each device's headers."""
    credentials = {"email": f"cart-{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse"}
    async with http.post(f"{gateway}/api/v1/auth/register", json={**credentials, "name": "E"}) as r:
        await expect_json(r, 201)
    devices = []
    for _ in range(2):
        async with http.post(f"{gateway}/api/v1/auth/login", json=credentials) as r:
            devices.append(
                {"Authorization": f"Bearer {(await expect_json(r, 200))['access_token']}"}
            )
    return tuple(devices)


async def _product(
    gateway: str, http: aiohttp.ClientSession, staff: dict[str, str], amount: int
) -> tuple[str, dict[str, Any], str]:
    """A published product with one SKU and 200 units in stock: its SKU, body and ETag."""
    tag = uuid.uuid4().hex[:6]
    sku = f"CUP-{tag}"
    body = {
        "slug": f"cup-{tag}",
        "name": f"Cup {tag}",
        "status": "published",
        "variants": [{"sku": sku, "price": {"amount": amount, "currency": "EUR"}}],
    }
    async with http.post(f"{gateway}/api/v1/products", json=body, headers=staff) as r:
        created = await expect_json(r, 201)
        etag = r.headers["ETag"]
    async with http.post(
        f"{gateway}/api/v1/inventory/{sku}/receipts",
        json={"quantity": 200, "reason": "delivery"},
        headers={**staff, "Idempotency-Key": uuid.uuid4().hex},
    ) as r:
        await expect_json(r, 201)
    return sku, {**body, "id": created["id"]}, etag


async def test_a_guest_cart_follows_its_shopper_into_an_account_on_every_device(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    staff = await admin_headers(gateway, http)
    cup, _, _ = await _product(gateway, http, staff, 800)
    async with http.post(f"{gateway}{CURRENT}/lines", json={"sku": cup, "quantity": 2}) as r:
        await expect_json(r, 201)
        guest = {"X-Cart-Token": r.headers["X-Cart-Token"]}
    laptop, phone = await _customer(gateway, http)

    async with http.post(f"{gateway}{CURRENT}/merge", headers={**laptop, **guest}) as r:
        merged = await expect_json(r, 200)
    async with http.get(f"{gateway}{CURRENT}", headers=guest) as r:
        await expect_json(r, 404)

    assert merged["merge"]["added"] == [{"sku": cup, "quantity": 2}]
    # Both instances behind the balancer answer each device with the same cart.
    for device in (laptop, phone, laptop, phone):
        async with http.get(f"{gateway}{CURRENT}", headers=device) as r:
            cart = await expect_json(r, 200)
        assert cart["id"] == merged["id"]
        assert cart["total"] == {"amount": 1600, "currency": "EUR"}


async def test_concurrent_adds_through_the_gateway_lose_nothing_and_a_price_change_shows(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    staff = await admin_headers(gateway, http)
    cup, product, etag = await _product(gateway, http, staff, 500)
    device, _ = await _customer(gateway, http)

    async def add() -> int:
        async with http.post(
            f"{gateway}{CURRENT}/lines", json={"sku": cup, "quantity": 1}, headers=device
        ) as r:
            return r.status

    statuses = await asyncio.gather(*(add() for _ in range(50)))
    assert set(statuses) <= {200, 201}
    async with http.get(f"{gateway}{CURRENT}", headers=device) as r:
        assert (await expect_json(r, 200))["lines"][0]["quantity"] == 50

    repriced = [{"sku": cup, "price": {"amount": 450, "currency": "EUR"}}]
    async with http.patch(
        f"{gateway}/api/v1/products/{product['id']}",
        json={"variants": repriced},
        headers={**staff, "If-Match": etag},
    ) as r:
        await expect_json(r, 200)

    deadline = asyncio.get_running_loop().time() + 10
    while True:
        async with http.get(f"{gateway}{CURRENT}", headers=device) as r:
            line = (await expect_json(r, 200))["lines"][0]
        if line["unit_price"]["amount"] == 450:
            break
        assert asyncio.get_running_loop().time() < deadline, "the new price never showed"
        await asyncio.sleep(0.1)
    assert line["price_changed"]["from"]["amount"] == 500
