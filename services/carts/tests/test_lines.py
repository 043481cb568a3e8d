"""A cart's lines: a guest's first write makes the cart, one line per SKU, limits, live totals."""

from __future__ import annotations

from carts_support import CURRENT, LINES, Catalog, Shop, quantities


async def test_a_guests_first_add_makes_a_cart_and_answers_its_token(
    shop: Shop, catalog: Catalog
) -> None:
    await catalog.add({"MUG-1": 1250})

    response = await shop.add("MUG-1", 2)

    assert response.status == 201
    token = response.headers["X-Cart-Token"]
    cart = await shop.cart({"X-Cart-Token": token})
    assert quantities(cart) == {"MUG-1": 2}
    line = cart["lines"][0]
    assert line["unit_price"] == {"amount": 1250, "currency": "EUR"}
    assert line["line_total"] == {"amount": 2500, "currency": "EUR"}
    assert cart["subtotal"] == {"amount": 2500, "currency": "EUR"}
    assert cart["item_count"] == 2
    assert cart["adjustments"] == []
    assert cart["checkout_ready"] is True
    assert response.headers["ETag"] == f'"v{cart["version"]}"'


async def test_adding_a_sku_again_grows_its_one_line(shop: Shop, catalog: Catalog) -> None:
    await catalog.add({"MUG-1": 1250, "MUG-2": 990})
    guest = await shop.guest("MUG-1")

    await shop.add("MUG-2", 1, guest)
    response = await shop.add("MUG-1", 3, guest)

    assert response.status == 200
    cart = await response.json()
    assert [line["sku"] for line in cart["lines"]] == ["MUG-1", "MUG-2"]
    assert quantities(cart) == {"MUG-1": 4, "MUG-2": 1}
    assert cart["subtotal"]["amount"] == 4 * 1250 + 990


async def test_a_client_sent_price_is_ignored(shop: Shop, catalog: Catalog) -> None:
    await catalog.add({"MUG-1": 1250})

    response = await shop.add("MUG-1", 1, unit_price={"amount": 1, "currency": "EUR"})

    cart = await response.json()
    assert cart["lines"][0]["unit_price"]["amount"] == 1250
    assert cart["total"]["amount"] == 1250


async def test_bad_quantities_are_refused_with_the_field_named(
    shop: Shop, catalog: Catalog
) -> None:
    await catalog.add({"MUG-1": 1250})

    for quantity in (0, -1, 100, "2", 1.5, None):
        response = await shop.add("MUG-1", quantity)  # type: ignore[arg-type]
        assert response.status == 422, quantity
        assert "quantity" in (await response.json())["errors"]


async def test_an_unknown_sku_is_refused_with_the_sku_named(shop: Shop, catalog: Catalog) -> None:
    await catalog.add({"MUG-1": 1250})

    response = await shop.add("NO-SUCH-SKU")

    assert response.status == 422
    problem = await response.json()
    assert problem["sku"] == "NO-SUCH-SKU"
    assert "NO-SUCH-SKU" in problem["errors"]["sku"][0]
    assert "X-Cart-Token" not in response.headers  # nothing was made


async def test_a_line_holds_at_most_99(shop: Shop, catalog: Catalog) -> None:
    await catalog.add({"MUG-1": 1250}, stock=500)
    guest = await shop.guest("MUG-1", 98)

    refused = await shop.add("MUG-1", 2, guest)
    await shop.add("MUG-1", 1, guest)

    assert refused.status == 409
    assert (await refused.json())["max_quantity"] == 99
    assert quantities(await shop.cart(guest)) == {"MUG-1": 99}


async def test_more_than_the_stock_is_refused(shop: Shop, catalog: Catalog) -> None:
    await catalog.add({"MUG-1": 1250}, stock=3)

    response = await shop.add("MUG-1", 4)

    assert response.status == 409
    assert (await response.json())["available"] == 3


async def test_a_sku_in_another_currency_is_refused(shop: Shop, catalog: Catalog) -> None:
    await catalog.add({"MUG-1": 1250})
    await catalog.add({"MUG-USD": 1500}, currency="USD")
    guest = await shop.guest("MUG-1")

    response = await shop.add("MUG-USD", 1, guest)

    assert response.status == 409
    assert (await response.json())["type"].endswith("/currency-mismatch")


async def test_changing_removing_and_emptying_lines(shop: Shop, catalog: Catalog) -> None:
    await catalog.add({"MUG-1": 1250, "MUG-2": 990, "MUG-3": 500})
    guest = await shop.guest("MUG-1")
    await shop.add("MUG-2", 1, guest)
    await shop.add("MUG-3", 1, guest)

    changed = await shop.call("PATCH", f"{LINES}/MUG-1", headers=guest, json={"quantity": 5})
    removed = await shop.call("DELETE", f"{LINES}/MUG-2", headers=guest)
    missing = await shop.call("DELETE", f"{LINES}/MUG-2", headers=guest)

    assert changed.status == 200
    assert quantities(await removed.json()) == {"MUG-1": 5, "MUG-3": 1}
    assert missing.status == 404
    emptied = await shop.call("DELETE", LINES, headers=guest)
    assert (await emptied.json())["lines"] == []


async def test_the_note_email_and_country_are_kept_and_checked(
    shop: Shop, catalog: Catalog
) -> None:
    await catalog.add({"MUG-1": 1250})
    guest = await shop.guest("MUG-1")

    response = await shop.call(
        "PATCH",
        CURRENT,
        headers=guest,
        json={"note": "gift wrap", "email": "ann@example.com", "ship_to_country": "DE"},
    )
    bad = await shop.call(
        "PATCH", CURRENT, headers=guest, json={"email": "nope", "ship_to_country": "Germany"}
    )
    cleared = await shop.call("PATCH", CURRENT, headers=guest, json={"note": None})

    cart = await response.json()
    assert (cart["note"], cart["email"], cart["ship_to_country"]) == (
        "gift wrap",
        "ann@example.com",
        "DE",
    )
    assert bad.status == 422
    assert set((await bad.json())["errors"]) == {"email", "ship_to_country"}
    assert (await cleared.json())["note"] is None


async def test_a_stale_if_match_is_refused_and_a_current_one_accepted(
    shop: Shop, catalog: Catalog
) -> None:
    await catalog.add({"MUG-1": 1250})
    guest = await shop.guest("MUG-1")
    etag = (await shop.call("GET", CURRENT, headers=guest)).headers["ETag"]

    accepted = await shop.add("MUG-1", 1, {**guest, "If-Match": etag})
    stale = await shop.add("MUG-1", 1, {**guest, "If-Match": etag})

    assert accepted.status == 200
    assert stale.status == 412
    assert quantities(await shop.cart(guest)) == {"MUG-1": 2}


async def test_an_add_retried_with_its_idempotency_key_counts_once(
    shop: Shop, catalog: Catalog
) -> None:
    await catalog.add({"MUG-1": 1250})
    guest = await shop.guest("MUG-1")
    headers = {**guest, "Idempotency-Key": "add-mug-once"}

    first = await shop.add("MUG-1", 2, headers)
    again = await shop.add("MUG-1", 2, headers)

    assert first.status == again.status == 200
    assert quantities(await shop.cart(guest)) == {"MUG-1": 3}


async def test_a_caller_without_a_cart_reads_an_empty_one(shop: Shop) -> None:
    cart = await shop.cart()

    assert cart["id"] is None
    assert cart["lines"] == []
    assert cart["subtotal"] == {"amount": 0, "currency": "EUR"}
    assert cart["checkout_ready"] is False
