"""Merging a guest cart into the user's at sign-in: every line kept, once, and the token dead after."""

from __future__ import annotations

from carts_support import CURRENT, Catalog, Shop, quantities

MERGE = "/api/v1/carts/current/merge"


async def test_a_merged_guest_cart_keeps_every_line_and_its_token_dies(
    shop: Shop, catalog: Catalog
) -> None:
    await catalog.add({"MUG-1": 1250, "MUG-2": 990, "MUG-3": 500})
    ann = shop.user("ann")
    await shop.add("MUG-1", 2, ann)
    guest = await shop.guest("MUG-1", 3)
    await shop.add("MUG-2", 1, guest)

    response = await shop.call("POST", MERGE, headers={**ann, **guest})

    assert response.status == 200, await response.text()
    merged = await response.json()
    assert quantities(merged) == {"MUG-1": 5, "MUG-2": 1}
    assert merged["merge"] == {
        "added": [{"sku": "MUG-1", "quantity": 3}, {"sku": "MUG-2", "quantity": 1}],
        "capped": [],
        "dropped": [],
    }
    assert (await shop.call("GET", CURRENT, headers=guest)).status == 404
    assert (await shop.add("MUG-3", 1, guest)).status == 404


async def test_merging_twice_changes_nothing_and_answers_the_same_report(
    shop: Shop, catalog: Catalog
) -> None:
    await catalog.add({"MUG-1": 1250})
    ann = shop.user("ann")
    guest = await shop.guest("MUG-1", 3)

    first = await shop.call("POST", MERGE, headers={**ann, **guest})
    again = await shop.call("POST", MERGE, headers={**ann, **guest})

    assert again.status == 200
    assert (await again.json())["merge"] == (await first.json())["merge"]
    assert quantities(await shop.cart(ann)) == {"MUG-1": 3}


async def test_merged_quantities_are_capped_at_the_line_maximum_and_reported(
    shop: Shop, catalog: Catalog
) -> None:
    await catalog.add({"MUG-1": 1250}, stock=500)
    ann = shop.user("ann")
    await shop.add("MUG-1", 60, ann)
    guest = await shop.guest("MUG-1", 50)

    merged = await (await shop.call("POST", MERGE, headers={**ann, **guest})).json()

    assert quantities(merged) == {"MUG-1": 99}
    assert merged["merge"]["capped"] == [{"sku": "MUG-1", "requested": 110, "kept": 99}]


async def test_another_user_cannot_merge_a_cart_merged_already(
    shop: Shop, catalog: Catalog
) -> None:
    await catalog.add({"MUG-1": 1250})
    guest = await shop.guest("MUG-1", 3)
    await shop.call("POST", MERGE, headers={**shop.user("ann"), **guest})

    response = await shop.call("POST", MERGE, headers={**shop.user("bob"), **guest})

    assert response.status == 404
    assert quantities(await shop.cart(shop.user("bob"))) == {}


async def test_a_merge_needs_a_signed_in_caller_and_a_token(shop: Shop, catalog: Catalog) -> None:
    await catalog.add({"MUG-1": 1250})
    guest = await shop.guest("MUG-1")

    anonymous = await shop.call("POST", MERGE, headers=guest)
    tokenless = await shop.call("POST", MERGE, headers=shop.user("ann"))

    assert anonymous.status == 401
    assert tokenless.status == 422
