"""Shipping and tax from the rates file: whole minor units, rounded per line, in every currency."""

from __future__ import annotations

from pathlib import Path

import pytest

from orders import rates
from orders.checkout import price
from orders.errors import ShippingUnavailable


def _cart(*lines: tuple[str, int, int], currency: str = "EUR") -> dict[str, object]:
    return {
        "currency": currency,
        "lines": [
            {"sku": sku, "title": sku, "quantity": quantity, "unit_price": {"amount": unit}}
            for sku, unit, quantity in lines
        ],
    }


def test_tax_included_in_prices_is_rounded_half_up_per_line() -> None:
    # 19 % included: 1.00 holds 0.1597 -> 0.16; 3 x 0.33 = 0.99 holds 0.158 -> 0.16
    table = rates.load()
    priced = price(_cart(("A", 100, 1), ("B", 33, 3)), table, "express", {"country": "DE"}, "EUR")

    assert [line["tax"] for line in priced["lines"]] == [16, 16]
    assert priced["shipping"]["amount"] == 1295
    assert priced["shipping"]["tax"] == 207  # 12.95 holds 2.0676
    assert priced["total"] == 100 + 99 + 1295  # included: the total is what the prices say


def test_tax_added_on_top_raises_the_total() -> None:
    # US sales tax 7.25 % on top: 10.00 -> 0.725 -> 0.73, shipping 5.99 -> 0.434 -> 0.43
    priced = price(
        _cart(("A", 1000, 1), currency="USD"), rates.load(), "standard", {"country": "US"}, "USD"
    )

    assert priced["tax_total"] == 73 + 43
    assert priced["total"] == 1000 + 599 + 73 + 43


def test_yen_amounts_stay_whole_yen() -> None:
    priced = price(
        _cart(("A", 1980, 3), currency="JPY"), rates.load(), "standard", {"country": "JP"}, "JPY"
    )

    assert priced["subtotal"] == 5940
    assert priced["shipping"]["amount"] == 800
    assert priced["lines"][0]["tax"] == 540  # 10 % included in 5940
    assert all(isinstance(value, int) for value in (priced["total"], priced["tax_total"]))


def test_shipping_is_free_from_its_threshold() -> None:
    table = rates.load()
    below = price(_cart(("A", 4999, 1)), table, "standard", {"country": "DE"}, "EUR")
    at = price(_cart(("A", 5000, 1)), table, "standard", {"country": "DE"}, "EUR")

    assert (below["shipping"]["amount"], at["shipping"]["amount"]) == (495, 0)


def test_a_method_that_does_not_ship_there_is_refused_naming_the_ones_that_do() -> None:
    with pytest.raises(ShippingUnavailable) as refused:
        rates.load().method("pickup", "FR", "EUR")

    assert refused.value.extensions["offered"] == ["standard", "express"]


def test_a_rates_file_with_a_fractional_amount_fails_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "rates.toml"
    bad.write_text(
        '[[shipping]]\nid = "x"\nname = "X"\ncountries = ["DE"]\nprice = { EUR = 4.95 }\n'
    )

    with pytest.raises(ValueError, match="whole minor units"):
        rates.load(bad)
