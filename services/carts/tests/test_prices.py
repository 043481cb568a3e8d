"""Totals from live prices: changes in products show at the next read; nothing leaves silently."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from carts_support import Catalog, Client, Shop, eventually

from carts.pricing import Prices
from shopkit.http import ServiceClient, UpstreamResponse
from shopkit.testing.tokens import TokenFactory


def _variants(product: dict[str, Any], amount: int) -> list[dict[str, Any]]:
    return [
        {
            "sku": variant["sku"],
            "price": {"amount": amount, "currency": "EUR"},
            "attributes": variant["attributes"],
        }
        for variant in product["variants"]
    ]


async def test_a_price_change_in_products_shows_in_the_next_read_flagged(
    shop: Shop, catalog: Catalog
) -> None:
    product = await catalog.add({"MUG-1": 1250})
    guest = await shop.guest("MUG-1", 2)
    await shop.cart(guest)  # the price is now cached

    await catalog.change(product, variants=_variants(product, 1500))

    async def repriced() -> dict[str, Any] | None:
        cart = await shop.cart(guest)
        return cart if cart["lines"][0]["unit_price"]["amount"] == 1500 else None

    cart = await eventually(repriced, timeout=5)
    assert cart["lines"][0]["price_changed"] == {
        "from": {"amount": 1250, "currency": "EUR"},
        "to": {"amount": 1500, "currency": "EUR"},
    }
    assert cart["subtotal"]["amount"] == 3000


async def test_an_archived_sku_stays_in_the_cart_flagged_and_blocks_checkout(
    shop: Shop, catalog: Catalog
) -> None:
    product = await catalog.add({"MUG-1": 1250})
    await catalog.add({"MUG-2": 990})
    guest = await shop.guest("MUG-1")
    await shop.add("MUG-2", 1, guest)

    archived = await catalog.products.delete(
        f"/api/v1/products/{product['id']}",
        headers={**catalog.staff, "If-Match": product["etag"]},
    )
    assert archived.status == 200

    async def flagged() -> dict[str, Any] | None:
        cart = await shop.cart(guest)
        return cart if cart["problems"] else None

    cart = await eventually(flagged, timeout=5)
    assert [line["sku"] for line in cart["lines"]] == ["MUG-1", "MUG-2"]
    assert cart["problems"] == [
        {"sku": "MUG-1", "code": "unavailable", "detail": "no longer for sale"}
    ]
    assert cart["checkout_ready"] is False


async def test_a_line_short_of_stock_is_flagged(shop: Shop, catalog: Catalog) -> None:
    await catalog.add({"MUG-1": 1250}, stock=5)
    guest = await shop.guest("MUG-1", 4)
    other = await shop.guest("MUG-1", 1)  # noqa: F841 (someone else's cart: stock is not held)

    adjusted = await catalog.products.post(
        "/api/v1/inventory/MUG-1/adjustments",
        json={"delta": -3, "reason": "damaged"},
        headers={**catalog.staff, "Idempotency-Key": "damage-1"},
    )
    assert adjusted.status == 201, await adjusted.text()

    async def flagged() -> dict[str, Any] | None:
        cart = await shop.cart(guest)
        return cart if cart["problems"] else None

    cart = await eventually(flagged, timeout=5)
    assert cart["problems"][0]["code"] == "insufficient_stock"
    assert cart["problems"][0]["available"] == 2


async def test_with_products_stopped_a_read_answers_in_time_with_stale_prices_and_an_add_503(
    start_carts: Callable[..., Awaitable[Client]],
    tokens: TokenFactory,
    catalog: Catalog,
) -> None:
    await catalog.add({"MUG-1": 1250, "MUG-2": 990})
    shop = Shop(await start_carts(PRICE_TTL="0"), tokens)
    guest = await shop.guest("MUG-1", 2)

    await catalog.products.close()  # products is down from here on

    # the bound is PRODUCTS_TIMEOUT (0.5 s here); wait_for fails the test if the read hangs
    cart = await asyncio.wait_for(shop.cart(guest), timeout=5)
    added = await shop.add("MUG-2", 1, guest)

    assert cart["prices_stale"] is True
    assert cart["lines"][0]["unit_price"] == {"amount": 1250, "currency": "EUR"}
    assert cart["subtotal"]["amount"] == 2500
    assert added.status == 503
    assert (await added.json())["type"].endswith("/prices-unavailable")


class _ChangingProducts(ServiceClient):
    """products' real client, where the product changes (its `product.changed` reaches carts) while
    the first lookup is out, as when a shopper adds a SKU the moment its product is saved."""

    prices: Prices
    lookups = 0

    async def request(self, method: str, path: str, **kwargs: Any) -> UpstreamResponse:
        self.lookups += 1
        if self.lookups == 1:
            self.prices.forget(["MUG-1"])
        return await super().request(method, path, **kwargs)


async def test_a_sku_whose_product_changes_during_its_lookup_is_asked_again_not_left_unpriced(
    catalog: Catalog,
) -> None:
    await catalog.add({"MUG-1": 1250})
    async with aiohttp.ClientSession() as session:
        products = _ChangingProducts(session, "products", str(catalog.products.make_url("")))
        products.prices = prices = Prices(products, ttl=60)

        quotes = await prices.quotes(["MUG-1"])

    assert products.lookups == 2
    assert quotes.stale is False
    assert quotes.found["MUG-1"].price is not None
    assert quotes.found["MUG-1"].price.amount == 1250
