"""Concurrent writes to one cart, from two tabs on two instances, lose nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from carts_support import Catalog, Client, Shop, quantities


async def test_50_concurrent_adds_of_one_sku_on_two_instances_end_with_50(
    start_carts: Callable[..., Awaitable[Client]], shop: Shop, catalog: Catalog
) -> None:
    await catalog.add({"MUG-1": 1250}, stock=500)
    other = Shop(await start_carts(), shop.tokens)
    user = shop.user("user-1")

    answers = await asyncio.gather(
        *((shop if index % 2 else other).add("MUG-1", 1, user) for index in range(50))
    )

    assert sorted({answer.status for answer in answers}) in ([200], [200, 201])
    assert quantities(await shop.cart(user)) == {"MUG-1": 50}
    assert quantities(await other.cart(user)) == {"MUG-1": 50}


async def test_adds_past_the_line_maximum_are_refused_cleanly_and_the_rest_kept(
    start_carts: Callable[..., Awaitable[Client]], shop: Shop, catalog: Catalog
) -> None:
    await catalog.add({"MUG-1": 1250}, stock=500)
    other = Shop(await start_carts(), shop.tokens)
    guest = await shop.guest("MUG-1", 90)

    answers = await asyncio.gather(
        *((shop if index % 2 else other).add("MUG-1", 1, guest) for index in range(20))
    )

    statuses = [answer.status for answer in answers]
    assert statuses.count(200) == 9
    assert statuses.count(409) == 11
    assert quantities(await shop.cart(guest)) == {"MUG-1": 99}


async def test_20_concurrent_adds_of_20_skus_leave_20_lines(
    start_carts: Callable[..., Awaitable[Client]], shop: Shop, catalog: Catalog
) -> None:
    skus = {f"SKU-{index}": 100 + index for index in range(20)}
    await catalog.add(skus)
    other = Shop(await start_carts(), shop.tokens)
    user = shop.user("user-1")

    await asyncio.gather(
        *((shop if index % 2 else other).add(sku, 1, user) for index, sku in enumerate(skus))
    )

    cart = await shop.cart(user)
    assert quantities(cart) == dict.fromkeys(skus, 1)
    assert cart["subtotal"]["amount"] == sum(skus.values())


async def test_a_users_cart_is_the_same_on_every_device(
    start_carts: Callable[..., Awaitable[Client]], shop: Shop, catalog: Catalog
) -> None:
    await catalog.add({"MUG-1": 1250, "MUG-2": 990})
    laptop = shop.tokens.header("user-1", "customer")
    phone = shop.tokens.header("user-1", "customer")
    other = Shop(await start_carts(), shop.tokens)

    await shop.add("MUG-1", 1, laptop)
    await other.add("MUG-2", 2, phone)

    assert quantities(await other.cart(laptop)) == {"MUG-1": 1, "MUG-2": 2}
    assert quantities(await shop.cart(phone)) == {"MUG-1": 1, "MUG-2": 2}
