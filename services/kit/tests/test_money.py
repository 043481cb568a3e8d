"""Money: integer minor units with an ISO currency, never floats, never mixed currencies."""

from __future__ import annotations

import pytest

from shopkit.money import Money, MoneySchema
from shopkit.problems import ValidationFailed
from shopkit.schemas import validate


def test_amounts_add_and_multiply_in_minor_units() -> None:
    price = Money(1999, "EUR")
    assert price.times(3) + Money(1, "EUR") == Money(5998, "EUR")
    assert price.to_json() == {"amount": 1999, "currency": "EUR"}


def test_a_currency_with_a_trailing_newline_is_no_currency() -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        Money(100, "EUR\n")


def test_currencies_never_mix() -> None:
    with pytest.raises(ValueError, match="EUR"):
        Money(100, "EUR") + Money(100, "USD")


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 19.99, "currency": "EUR"},
        {"amount": "1999", "currency": "EUR"},
        {"amount": -1, "currency": "EUR"},
        {"amount": True, "currency": "EUR"},
        {"amount": 100, "currency": "eur"},
        {"amount": 100, "currency": "EURO"},
        {"amount": 100, "currency": "EUR\n"},
        {"amount": 100},
        {"amount": 100, "currency": "EUR", "rate": 1},
    ],
)
def test_the_schema_refuses_anything_but_integer_minor_units_and_a_currency(body: dict) -> None:
    with pytest.raises(ValidationFailed):
        validate(MoneySchema(), body)


def test_the_schema_loads_money() -> None:
    assert validate(MoneySchema(), {"amount": 250, "currency": "GBP"}) == Money(250, "GBP")
