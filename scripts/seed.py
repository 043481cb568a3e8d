"""Load the deterministic demo catalog into the running local stack, through the gateway's public API.

Categories, 5,000 products with variants and stock receipts, each write with an Idempotency-Key, so
running it twice changes nothing. Usage: ./task seed (after ./task up).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import stack_env

from products import demo

GATEWAY = "http://127.0.0.1:8080"
CONCURRENCY = 12


async def admin_token(http: aiohttp.ClientSession) -> str:
    env = stack_env()
    credentials = {"email": env["ADMIN_EMAIL"], "password": env["ADMIN_PASSWORD"]}
    async with http.post(f"{GATEWAY}/api/v1/auth/login", json=credentials) as response:
        response.raise_for_status()
        return str((await response.json())["access_token"])


async def post(
    http: aiohttp.ClientSession, path: str, body: dict[str, Any], key: str
) -> tuple[int, Any]:
    async with http.post(
        f"{GATEWAY}{path}", json=body, headers={"Idempotency-Key": key}
    ) as response:
        return response.status, await response.json(content_type=None)


async def seed_categories(http: aiohttp.ClientSession) -> dict[str, str]:
    async with http.get(f"{GATEWAY}/api/v1/categories") as response:
        existing = {c["slug"]: c["id"] for c in (await response.json())["items"]}
    for slug, name, parent in demo.categories():
        if slug in existing:
            continue
        body = {"slug": slug, "name": name, "parent_id": existing[parent] if parent else None}
        status, created = await post(http, "/api/v1/categories", body, f"seed-category-{slug}")
        if status not in (200, 201):
            raise RuntimeError(f"category {slug}: {status} {created}")
        existing[slug] = created["id"]
    return existing


async def seed_product(
    http: aiohttp.ClientSession, item: demo.DemoProduct, categories: dict[str, str]
) -> str:
    body = {**item.body, "category_id": categories[item.category]}
    status, _ = await post(http, "/api/v1/products", body, f"seed-product-{body['slug']}")
    if status not in (200, 201, 409):
        raise RuntimeError(f"product {body['slug']}: {status}")
    for sku, units in item.stock.items():
        if units == 0:
            continue
        status, answer = await post(
            http,
            f"/api/v1/inventory/{sku}/receipts",
            {"quantity": units, "reason": "demo seed"},
            f"seed-stock-{sku}",
        )
        if status not in (200, 201):
            raise RuntimeError(f"stock {sku}: {status} {answer}")
    return "created" if status in (200, 201) else "existed"


async def main() -> None:
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        http.headers["Authorization"] = f"Bearer {await admin_token(http)}"
        categories = await seed_categories(http)
        queue: asyncio.Queue[demo.DemoProduct] = asyncio.Queue()
        for item in demo.products():
            queue.put_nowait(item)
        total, done = queue.qsize(), 0

        async def worker() -> None:
            nonlocal done
            while not queue.empty():
                await seed_product(http, queue.get_nowait(), categories)
                done += 1
                if done % 500 == 0:
                    print(
                        f"  {done}/{total} products ({time.monotonic() - started:.0f} s)",
                        flush=True,
                    )

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        print(
            f"seeded {len(categories)} categories and {total} products in {time.monotonic() - started:.0f} s"
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            async with http.get(f"{GATEWAY}/api/v1/search", params={"limit": "1"}) as response:
                found = (await response.json()).get("total", 0) if response.status == 200 else 0
            if found >= total * 0.95:
                break
            await asyncio.sleep(2)
        print(f"search index holds {found} products ({time.monotonic() - started:.0f} s); try:")
        print(f"  curl -s '{GATEWAY}/api/v1/search?q=wireless+headphone&limit=3'")


if __name__ == "__main__":
    asyncio.run(main())
