"""The events orders publishes (subject `shop.orders.<type>`, stream `orders`), each one's payload,
and the payments events it consumes.

An order is the stream `order-<id>` in orders' relayed `events`: every change of the order is one
event, so the stream is also the order's timeline. Each payload carries `order_id`; the events
carts and products follow carry `cart_id` too, and `order.paid` the ordered lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shopkit.events import Payload


class OrderEvent(StrEnum):
    PLACED = "order.placed"
    PAYMENT_PROCESSING = "order.payment_processing"
    PAID = "order.paid"
    CANCELLED = "order.cancelled"
    EXPIRED = "order.expired"
    SHIPPED = "order.shipped"
    DELIVERED = "order.delivered"
    REFUND_REQUESTED = "order.refund_requested"
    REFUNDED = "order.refunded"
    REFUND_FAILED = "order.refund_failed"
    DISPUTED = "order.disputed"
    NOTE_ADDED = "order.note_added"


@dataclass(frozen=True, slots=True)
class OrderLine(Payload):
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class OrderPlaced(Payload):
    """The whole order as placed (`Order.to_json`); consumers read what they need."""

    order_id: str
    number: str
    cart_id: str
    email: str
    currency: str
    total: int
    lines: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class OrderPaid(Payload):
    """Its reservation is committed (products) and the ordered quantities leave the cart (carts)."""

    order_id: str
    number: str
    cart_id: str
    email: str
    currency: str
    total: int
    lines: list[dict[str, Any]]
    payment_intent_id: str


@dataclass(frozen=True, slots=True)
class OrderEnded(Payload):
    """`order.cancelled` and `order.expired`: the reservation is released, the cart's hold ends,
    and payments cancels the PaymentIntent or gives back what was paid."""

    order_id: str
    cart_id: str
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class OrderShipped(Payload):
    order_id: str
    carrier: str
    tracking_number: str
    actor: str


@dataclass(frozen=True, slots=True)
class OrderStep(Payload):
    """`order.payment_processing`, `order.delivered`: the order, and who moved it."""

    order_id: str
    actor: str


@dataclass(frozen=True, slots=True)
class OrderRefund(Payload):
    """`order.refund_requested`, `order.refunded`, `order.refund_failed`."""

    order_id: str
    refund_id: str
    amount: int
    currency: str
    reason: str
    actor: str
    refunded_total: int = 0


@dataclass(frozen=True, slots=True)
class OrderDisputed(Payload):
    order_id: str
    dispute_id: str
    amount: int
    currency: str
    reason: str


@dataclass(frozen=True, slots=True)
class NoteAdded(Payload):
    order_id: str
    text: str
    actor: str


class PaymentEvent(StrEnum):
    """What orders reads of payments' events (payments' `events.py` is their contract)."""

    PROCESSING = "payment.processing"
    SUCCEEDED = "payment.succeeded"
    FAILED = "payment.failed"
    CANCELLED = "payment.cancelled"
    DISPUTED = "payment.disputed"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"


@dataclass(frozen=True, slots=True)
class PaymentChanged(Payload):
    order_id: str
    amount: int
    currency: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RefundSettled(Payload):
    order_id: str
    refund_id: str
    amount: int
    currency: str
    reason: str
    refunded_total: int
    automatic: bool = False


@dataclass(frozen=True, slots=True)
class PaymentDisputed(Payload):
    order_id: str
    dispute_id: str
    amount: int
    currency: str
    reason: str
