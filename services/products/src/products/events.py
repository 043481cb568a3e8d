"""The events products publishes on the bus (subject `shop.products.<type>`), each one's payload, and
the events it consumes from services that do not exist yet."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from products.model import Category, Product
from shopkit.events import Payload

__all__ = [
    "Alert",
    "CatalogEvent",
    "CategoryChanged",
    "Movement",
    "OrderClosed",
    "OrderEvent",
    "ProductChanged",
    "StockAlerted",
    "StockMoved",
]


class CatalogEvent(StrEnum):
    """A product's stream `product-<id>` holds its snapshots; the stream `categories` the tree's."""

    PRODUCT_CHANGED = "product.changed"
    CATEGORY_CHANGED = "category.changed"


# `product.changed` carries the whole product, as the model writes it (`to_json`) and reads it
# back (`from_json`); `version` is the event's seq. There is no `product.deleted`: a product is
# never deleted, only archived (its SKUs stay claimed, past orders name them), and an archived
# snapshot is a `product.changed` that search turns into a tombstone.
ProductChanged = Product
# `category.changed` carries the whole category (`to_json`) and `version`, the tree's seq.
CategoryChanged = Category


class Movement(StrEnum):
    """The stock ledger's event types, on each SKU's stream `stock-<sku>`; search indexes them."""

    RECEIVED = "stock.received"
    ADJUSTED = "stock.adjusted"
    RESERVED = "stock.reserved"
    RELEASED = "stock.released"
    COMMITTED = "stock.committed"


class Alert(StrEnum):
    """Published on their own stream per SKU, `stock-alerts-<sku>`, so an alert never takes a
    ledger slot."""

    LOW = "stock.low"
    OUT = "stock.out"


@dataclass(frozen=True, slots=True)
class StockMoved(Payload):
    """Every movement: what moved and the levels it results in, so a consumer never folds.

    `quantity` is signed for an adjustment; the order's fields are set for a reservation, its
    release and its commit, and `expires_at` for a reservation.
    """

    sku: str
    quantity: int
    on_hand: int
    reserved: int
    available: int
    actor: str
    reason: str
    order_id: str | None = None
    attempt: int | None = None
    expires_at: str | None = None


@dataclass(frozen=True, slots=True)
class StockAlerted(Payload):
    """Available stock fell to `threshold` (`stock.low`) or to nothing (`stock.out`) with the
    movement at `ledger_seq`."""

    sku: str
    on_hand: int
    reserved: int
    available: int
    threshold: int
    ledger_seq: int


# --- Consumed: the order events inventory follows (published by orders as `shop.orders.<type>`).
# orders does not exist yet, so their names and the one field read are defined here, once; when
# orders lands they move to orders/events.py, and this section imports them from there.


class OrderEvent(StrEnum):
    PAID = "order.paid"  # commits the order's reservation
    CANCELLED = "order.cancelled"  # releases it
    EXPIRED = "order.expired"  # releases it


@dataclass(frozen=True, slots=True)
class OrderClosed(Payload):
    """The one field of an order event inventory reads."""

    order_id: str
