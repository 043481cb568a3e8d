"""The events carts consumes, as it reads them; carts publishes none (a cart's stream is private).

Each is named here once, by the consumer, with only the fields carts reads (`from_json` ignores the
rest): products' catalogue and stock events keep the price cache current, and orders' events end a
checkout (orders publishes them once it is built; its `events.py` will then be their contract).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shopkit.events import Payload


class ProductEvent(StrEnum):
    CHANGED = "product.changed"


class StockEvent(StrEnum):
    """Every movement of a SKU's ledger, each with the levels it results in."""

    RECEIVED = "stock.received"
    ADJUSTED = "stock.adjusted"
    RESERVED = "stock.reserved"
    RELEASED = "stock.released"
    COMMITTED = "stock.committed"


class OrderEvent(StrEnum):
    PAID = "order.paid"
    CANCELLED = "order.cancelled"
    EXPIRED = "order.expired"


@dataclass(frozen=True, slots=True)
class ProductChanged(Payload):
    variants: list[dict[str, Any]]

    @property
    def skus(self) -> list[str]:
        return [str(variant["sku"]) for variant in self.variants]


@dataclass(frozen=True, slots=True)
class StockMoved(Payload):
    sku: str
    available: int


@dataclass(frozen=True, slots=True)
class OrderLine(Payload):
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class OrderPaid(Payload):
    """A paid order: its cart loses the quantities it ordered (a line added since stays)."""

    order_id: str
    cart_id: str
    lines: list[dict[str, Any]]

    @property
    def ordered(self) -> list[OrderLine]:
        return [OrderLine.from_json(line) for line in self.lines]


@dataclass(frozen=True, slots=True)
class OrderEnded(Payload):
    """A cancelled or expired order: its cart is free for another checkout, unchanged."""

    order_id: str
    cart_id: str
