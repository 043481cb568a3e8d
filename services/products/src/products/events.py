"""Event types the products service publishes that more than one of its packages reads."""

from __future__ import annotations

from enum import StrEnum


class Movement(StrEnum):
    """The stock ledger's event types (published as `shop.products.stock.*`); search indexes them."""

    RECEIVED = "stock.received"
    ADJUSTED = "stock.adjusted"
    RESERVED = "stock.reserved"
    RELEASED = "stock.released"
    COMMITTED = "stock.committed"


class Alert(StrEnum):
    """Published on their own stream per SKU, so an alert never takes a ledger slot."""

    LOW = "stock.low"
    OUT = "stock.out"
