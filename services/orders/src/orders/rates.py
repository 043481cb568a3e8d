"""Shipping methods and tax rates (a TOML file, `rates.toml` by default), and the sums they give.

Every amount is an integer of minor units. Tax is computed per line and on shipping, each rounded
half up to a minor unit: included in the price (tax = price x rate / (1 + rate)) or added to it
(tax = price x rate).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orders.errors import ShippingUnavailable

DEFAULT_FILE = Path(__file__).with_name("rates.toml")
BASIS = 10_000  # rates are in basis points


@dataclass(frozen=True, slots=True)
class TaxRate:
    rate: int  # basis points
    inclusive: bool

    def of(self, amount: int) -> int:
        """The tax in `amount`, rounded half up to a minor unit."""
        if self.rate == 0 or amount == 0:
            return 0
        if self.inclusive:
            return _half_up(amount * self.rate, BASIS + self.rate)
        return _half_up(amount * self.rate, BASIS)


NO_TAX = TaxRate(0, inclusive=False)


@dataclass(frozen=True, slots=True)
class ShippingMethod:
    id: str
    name: str
    countries: frozenset[str]
    price: dict[str, int]
    free_from: dict[str, int]

    def cost(self, currency: str, subtotal: int) -> int:
        threshold = self.free_from.get(currency)
        if threshold is not None and subtotal >= threshold:
            return 0
        return self.price[currency]

    def serves(self, country: str, currency: str) -> bool:
        return country in self.countries and currency in self.price

    def to_json(self, currency: str, subtotal: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "price": {"amount": self.cost(currency, subtotal), "currency": currency},
        }


@dataclass(frozen=True, slots=True)
class Rates:
    taxes: dict[str, TaxRate]
    shipping: tuple[ShippingMethod, ...]

    def tax(self, country: str) -> TaxRate:
        return self.taxes.get(country, NO_TAX)

    def methods(self, country: str, currency: str) -> list[ShippingMethod]:
        return [method for method in self.shipping if method.serves(country, currency)]

    def method(self, method_id: str, country: str, currency: str) -> ShippingMethod:
        for method in self.methods(country, currency):
            if method.id == method_id:
                return method
        offered = [method.id for method in self.methods(country, currency)]
        raise ShippingUnavailable(
            f"shipping method {method_id!r} does not ship to {country} in {currency}",
            offered=offered,
        )


def load(path: Path | None = None) -> Rates:
    """The rates of `path` (the packaged file by default); a malformed file fails the start."""
    raw = tomllib.loads((path or DEFAULT_FILE).read_text())
    taxes = {
        country: TaxRate(int(entry["rate"]), bool(entry["inclusive"]))
        for country, entry in raw.get("tax", {}).items()
    }
    methods = tuple(
        ShippingMethod(
            id=str(entry["id"]),
            name=str(entry["name"]),
            countries=frozenset(entry["countries"]),
            price={currency: _amount(value) for currency, value in entry["price"].items()},
            free_from={
                currency: _amount(value) for currency, value in entry.get("free_from", {}).items()
            },
        )
        for entry in raw.get("shipping", [])
    )
    if len({method.id for method in methods}) != len(methods):
        raise ValueError("two shipping methods share an id")
    return Rates(taxes, methods)


def _amount(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"amounts are whole minor units, not {value!r}")
    return value


def _half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)
