"""The events notifications reads (it publishes none), with only the fields it needs.

Each publisher owns its event's schema (its own `events.py`); these narrower classes read what a
message needs and nothing else, so a publisher may add fields freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shopkit.events import Payload


class UserEvent(StrEnum):
    REGISTERED = "user.registered"
    EMAIL_VERIFICATION_REQUESTED = "user.email_verification_requested"
    PASSWORD_RESET_REQUESTED = "user.password_reset_requested"
    PASSWORD_CHANGED = "user.password_changed"
    EMAIL_CHANGED = "user.email_changed"


class OrderEvent(StrEnum):
    PLACED = "order.placed"
    PAID = "order.paid"
    SHIPPED = "order.shipped"
    DELIVERED = "order.delivered"
    CANCELLED = "order.cancelled"
    REFUNDED = "order.refunded"


class PaymentEvent(StrEnum):
    FAILED = "payment.failed"


class StockEvent(StrEnum):
    LOW = "stock.low"


@dataclass(frozen=True, slots=True)
class UserRegistered(Payload):
    user_id: str
    email: str
    name: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LinkRequested(Payload):
    """`user.email_verification_requested` and `user.password_reset_requested`: the token is not
    in the event; users answers it for `link_id` to notifications only."""

    user_id: str
    email: str
    link_id: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class PasswordChanged(Payload):
    user_id: str
    email: str


@dataclass(frozen=True, slots=True)
class EmailChanged(Payload):
    user_id: str
    old_email: str
    new_email: str


@dataclass(frozen=True, slots=True)
class OrderPlaced(Payload):
    order_id: str
    number: str
    email: str
    currency: str
    lines: tuple[dict[str, Any], ...]
    subtotal: int
    shipping_total: int
    tax_total: int
    total: int
    user_id: str | None = None
    tax_inclusive: bool = False
    shipping: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class OrderFact(Payload):
    """Any later order event: which order; the rest is read from what `order.placed` said."""

    order_id: str


@dataclass(frozen=True, slots=True)
class OrderShipped(Payload):
    order_id: str
    carrier: str
    tracking_number: str


@dataclass(frozen=True, slots=True)
class OrderEnded(Payload):
    order_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OrderRefunded(Payload):
    order_id: str
    refund_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class PaymentFailed(Payload):
    order_id: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class StockLow(Payload):
    sku: str
    on_hand: int
    reserved: int
    available: int
    threshold: int
