"""The decisions on a cart's state, without a database: limits and merges decided once."""

from __future__ import annotations

import pytest

from carts import changes
from carts.errors import LineLimit, PricesUnavailable
from carts.model import MAX_LINES, Cart, CartEvent
from carts.pricing import Quote
from shopkit import clock
from shopkit.events import Event, NewEvent
from shopkit.money import Money


def _quote(sku: str, amount: int = 100) -> Quote:
    return Quote(sku, True, Money(amount, "EUR"), f"Thing {sku}", None)


def _apply(cart: Cart, new: NewEvent | None) -> Cart:
    from carts.model import fold

    assert new is not None
    event = Event("e", "cart", cart.version + 1, new.type, new.data, clock.now())
    return fold(cart, event)


def _cart_of(count: int) -> Cart:
    cart = Cart()
    for index in range(count):
        cart = _apply(cart, changes.add(_quote(f"S{index}"), 1, expected=None, event_id=None)(cart))
    return cart


def test_a_cart_holds_at_most_100_lines_and_more_of_a_held_sku_still_fits() -> None:
    cart = _cart_of(MAX_LINES)

    with pytest.raises(LineLimit):
        changes.add(_quote("ONE-MORE"), 1, expected=None, event_id=None)(cart)
    grown = _apply(cart, changes.add(_quote("S0"), 2, expected=None, event_id=None)(cart))

    assert [(line.sku, line.quantity) for line in grown.lines[:2]] == [("S0", 3), ("S1", 1)]


def test_a_merge_past_the_line_limit_drops_the_extra_lines_and_says_so() -> None:
    cart = _cart_of(MAX_LINES - 1)
    guest = _cart_of(0)
    for sku in ("G1", "G2"):
        guest = _apply(guest, changes.add(_quote(sku), 4, expected=None, event_id=None)(guest))

    merged = changes.merge_in("guest-1", guest.lines)(cart)

    assert merged is not None
    assert merged.type == CartEvent.MERGED_IN
    assert merged.data["report"]["dropped"] == [
        {"sku": "G2", "quantity": 4, "reason": "line_limit"}
    ]
    after = _apply(cart, merged)
    assert len(after.lines) == MAX_LINES
    assert after.merges["guest-1"] == merged.data["report"]
    assert changes.merge_in("guest-1", guest.lines)(after) is None


def test_a_paid_order_takes_out_only_what_it_ordered() -> None:
    from carts.events import OrderLine

    cart = _cart_of(2)
    cart = _apply(cart, changes.add(_quote("S0"), 2, expected=None, event_id=None)(cart))

    after = _apply(cart, changes.paid("o-1", [OrderLine("S0", 2), OrderLine("GONE", 1)])(cart))

    assert [(line.sku, line.quantity) for line in after.lines] == [("S0", 1), ("S1", 1)]


def test_raising_a_line_that_shrank_meanwhile_without_a_live_price_is_a_503_not_a_crash() -> None:
    cart = _cart_of(1)  # S0 holds 1: the route, which saw 5, fetched no price to lower it to 3

    with pytest.raises(PricesUnavailable):
        changes.change("S0", 3, None, expected=None, event_id=None)(cart)
