"""Whose cart is whose: a user's own, a guest's only with its token, any by id only for staff."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from carts_support import CURRENT, LINES, Catalog, Client, Shop, quantities

from shopkit.testing.tokens import TokenFactory


async def test_a_user_reads_and_changes_only_their_own_cart(shop: Shop, catalog: Catalog) -> None:
    await catalog.add({"MUG-1": 1250, "MUG-2": 990})
    ann, bob = shop.user("ann"), shop.user("bob")
    await shop.add("MUG-1", 1, ann)
    await shop.add("MUG-2", 1, bob)

    removed = await shop.call("DELETE", f"{LINES}/MUG-1", headers=bob)
    emptied = await shop.call("DELETE", LINES, headers=bob)

    assert removed.status == 404  # bob has no MUG-1: ann's cart is not his to see
    assert emptied.status == 200
    assert quantities(await shop.cart(ann)) == {"MUG-1": 1}
    assert quantities(await shop.cart(bob)) == {}


async def test_a_guest_cart_opens_only_with_its_token(shop: Shop, catalog: Catalog) -> None:
    await catalog.add({"MUG-1": 1250})
    guest = await shop.guest("MUG-1")
    ann = shop.user("ann")

    without_token = await shop.cart()
    forged = await shop.call("GET", CURRENT, headers={"X-Cart-Token": "x" * 43})
    malformed = await shop.call("GET", CURRENT, headers={"X-Cart-Token": "nope"})
    signed_in = await shop.cart({**ann, **guest})

    assert without_token["lines"] == []
    assert forged.status == malformed.status == 404
    assert signed_in["lines"] == []  # a signed-in caller's cart is their own, token or not
    assert quantities(await shop.cart(guest)) == {"MUG-1": 1}


async def test_each_cart_opened_is_counted_once_by_its_owner(shop: Shop, catalog: Catalog) -> None:
    # given a user and a guest who each put two lines in a new cart
    await catalog.add({"MUG-1": 1250, "MUG-2": 990})
    ann = shop.user("ann")
    await shop.add("MUG-1", 1, ann)
    await shop.add("MUG-2", 1, ann)
    guest = await shop.guest("MUG-1")
    await shop.add("MUG-2", 1, guest)

    # when the metrics are read
    metrics = await (await shop.call("GET", "/metrics")).text()

    # then one cart of each kind was opened
    assert 'carts_opened_total{owner="user"} 1.0' in metrics
    assert 'carts_opened_total{owner="guest"} 1.0' in metrics


async def test_staff_read_any_cart_by_id_and_customers_none(shop: Shop, catalog: Catalog) -> None:
    await catalog.add({"MUG-1": 1250})
    guest = await shop.guest("MUG-1")
    cart_id = (await shop.cart(guest))["id"]

    by_staff = await shop.call("GET", f"/api/v1/carts/{cart_id}", headers=shop.user("s", "staff"))
    by_customer = await shop.call("GET", f"/api/v1/carts/{cart_id}", headers=shop.user("ann"))
    unknown = await shop.call("GET", "/api/v1/carts/nope", headers=shop.user("s", "staff"))

    assert by_staff.status == 200
    assert quantities(await by_staff.json()) == {"MUG-1": 1}
    assert by_customer.status == 403
    assert unknown.status == 404


async def test_an_expired_token_is_refused_rather_than_taken_for_a_guest(
    shop: Shop, catalog: Catalog
) -> None:
    await catalog.add({"MUG-1": 1250})
    expired = {"Authorization": f"Bearer {shop.tokens.mint('ann', 'customer', ttl=-120)}"}

    response = await shop.add("MUG-1", 1, expired)

    assert response.status == 401
    assert "X-Cart-Token" not in response.headers


async def test_guest_carts_are_rate_limited_per_client(
    start_carts: Callable[..., Awaitable[Client]], tokens: TokenFactory, catalog: Catalog
) -> None:
    await catalog.add({"MUG-1": 1250})
    shop = Shop(await start_carts(GUEST_CARTS_PER_MINUTE="3"), tokens)

    made = [await shop.add("MUG-1", 1, {"X-Real-IP": "203.0.113.7"}) for _ in range(4)]
    elsewhere = await shop.add("MUG-1", 1, {"X-Real-IP": "203.0.113.8"})

    assert [response.status for response in made] == [201, 201, 201, 429]
    assert int(made[-1].headers["Retry-After"]) >= 1
    assert elsewhere.status == 201
