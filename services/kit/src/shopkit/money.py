"""Money as integer minor units with an ISO 4217 currency; never floats."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from marshmallow import fields, post_load, validate

from shopkit.schemas import Schema, WholeNumber

__all__ = ["MINIMUM_CHARGE", "Money", "MoneySchema"]

CURRENCY = re.compile(r"^[A-Z]{3}\Z")
MAX_AMOUNT = 10**12
# The smallest charge a card processor (Stripe) accepts per currency, in minor units
# (docs.stripe.com/currencies#minimum-and-maximum-charge-amounts). A currency not listed is left to
# the processor to refuse.
MINIMUM_CHARGE = {
    "USD": 50,
    "AED": 200,
    "AUD": 50,
    "BGN": 100,
    "BRL": 50,
    "CAD": 50,
    "CHF": 50,
    "CZK": 1500,
    "DKK": 250,
    "EUR": 50,
    "GBP": 30,
    "HKD": 400,
    "HUF": 17500,
    "INR": 50,
    "JPY": 50,
    "MXN": 1000,
    "MYR": 200,
    "NOK": 300,
    "NZD": 50,
    "PLN": 200,
    "RON": 200,
    "SEK": 300,
    "SGD": 50,
    "THB": 1000,
}


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("amount must be an integer of minor units")
        if not CURRENCY.match(self.currency):
            raise ValueError("currency must be an ISO 4217 code")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def times(self, quantity: int) -> Money:
        return Money(self.amount * quantity, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def to_json(self) -> dict[str, Any]:
        return {"amount": self.amount, "currency": self.currency}


class MoneySchema(Schema):
    amount = WholeNumber(required=True, validate=validate.Range(0, MAX_AMOUNT))
    currency = fields.String(required=True, validate=validate.Regexp(CURRENCY))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Money:
        return Money(**data)
