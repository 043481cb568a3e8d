"""The catalog end to end: staff publish through the gateway, customers find, read and price it."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
from e2e_support import admin_headers, expect_json


async def _search_until(gateway: str, http: aiohttp.ClientSession, query: str, name: str) -> float:
    """Seconds until a search for `query` returns a product called `name` (gives up after 10 s)."""
    started = time.monotonic()
    while time.monotonic() - started < 10:
        async with http.get(f"{gateway}/api/v1/search", params={"q": query}) as r:
            if r.status == 200 and any(item["name"] == name for item in (await r.json())["items"]):
                return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name!r} never appeared for {query!r}")


async def test_a_product_published_and_renamed_through_the_api_is_found_within_seconds(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    staff = await admin_headers(gateway, http)
    tag = uuid.uuid4().hex[:6]
    body = {
        "slug": f"kettle-{tag}",
        "name": f"Copper Kettle {tag}",
        "brand": "Fjord",
        "status": "published",
        "variants": [{"sku": f"KETTLE-{tag}", "price": {"amount": 4999, "currency": "EUR"}}],
    }
    async with http.post(f"{gateway}/api/v1/products", json=body, headers=staff) as r:
        created = await expect_json(r, 201)
        etag = r.headers["ETag"]
    assert await _search_until(gateway, http, f"coper kettle {tag}", body["name"]) < 5

    renamed = f"Brass Teapot {tag}"
    async with http.patch(
        f"{gateway}/api/v1/products/{created['id']}",
        json={"name": renamed},
        headers={**staff, "If-Match": etag},
    ) as r:
        await expect_json(r, 200)

    assert await _search_until(gateway, http, f"brass teapot {tag}", renamed) < 5


async def test_stock_received_by_staff_shows_in_the_sku_lookup(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    staff = await admin_headers(gateway, http)
    tag = uuid.uuid4().hex[:6]
    body = {
        "slug": f"mug-{tag}",
        "name": f"Mug {tag}",
        "status": "published",
        "variants": [{"sku": f"MUG-{tag}", "price": {"amount": 1200, "currency": "EUR"}}],
    }
    async with http.post(f"{gateway}/api/v1/products", json=body, headers=staff) as r:
        await expect_json(r, 201)
    async with http.post(
        f"{gateway}/api/v1/inventory/MUG-{tag}/receipts",
        json={"quantity": 7, "reason": "delivery"},
        headers={**staff, "Idempotency-Key": f"receipt-{tag}"},
    ) as r:
        assert r.status in (200, 201), await r.text()

    async with http.get(f"{gateway}/api/v1/products/skus", params={"skus": f"MUG-{tag}"}) as r:
        found = await expect_json(r, 200)

    assert found["items"][0]["available"] == 7
    assert found["items"][0]["price"] == {"amount": 1200, "currency": "EUR"}


async def test_internal_inventory_routes_are_not_reachable_through_the_gateway(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{gateway}/internal/inventory/reservations", json={}) as r:
        assert r.status == 404
    async with http.get(f"{gateway}/api/v1/products/openapi.json") as r:
        assert "/api/v1/products/{key}" in (await expect_json(r, 200))["paths"]
