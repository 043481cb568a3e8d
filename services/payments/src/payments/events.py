"""The events payments publishes (subject `shop.payments.<type>`, stream `payments`), each one's
payload, and the orders events it consumes.

An order's payment is the stream `payment-<order id>` in payments' relayed `events`: the
PaymentIntent's life and every refund of it, so orders follows one stream per order. Every payload
carries `order_id` and `payment_intent_id`; amounts are integers in minor units of `currency`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shopkit.events import Payload


class PaymentEvent(StrEnum):
    CREATED = "payment.created"
    PROCESSING = "payment.processing"
    SUCCEEDED = "payment.succeeded"
    FAILED = "payment.failed"
    CANCELLED = "payment.cancelled"
    DISPUTED = "payment.disputed"


class RefundEvent(StrEnum):
    REQUESTED = "refund.requested"
    SUCCEEDED = "refund.succeeded"
    FAILED = "refund.failed"


@dataclass(frozen=True, slots=True)
class PaymentCreated(Payload):
    order_id: str
    payment_intent_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class PaymentChanged(Payload):
    """`payment.processing`, `payment.succeeded`, `payment.failed` (`reason`: Stripe's decline
    code or message), `payment.cancelled` (`reason`: Stripe's cancellation reason).
    `stripe_created`: when Stripe reported the change (Unix seconds), which orders the
    changes that may supersede each other (processing, failed)."""

    order_id: str
    payment_intent_id: str
    amount: int
    currency: str
    reason: str | None = None
    stripe_created: int | None = None


@dataclass(frozen=True, slots=True)
class RefundChanged(Payload):
    """`refund.requested`, `refund.succeeded`, `refund.failed`. `refund_id` is the platform's
    (the Stripe refund's id is `stripe_refund_id`); `refunded_total` sums the refunds that
    succeeded, this one included; `automatic` marks money given back for an order that ended."""

    order_id: str
    payment_intent_id: str
    refund_id: str
    amount: int
    currency: str
    reason: str
    refunded_total: int
    automatic: bool = False
    stripe_refund_id: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentDisputed(Payload):
    order_id: str
    payment_intent_id: str
    dispute_id: str
    amount: int
    currency: str
    reason: str


class OrderEvent(StrEnum):
    """What payments reads of orders' events: an order that ended gives its money back."""

    CANCELLED = "order.cancelled"
    EXPIRED = "order.expired"


@dataclass(frozen=True, slots=True)
class OrderEnded(Payload):
    order_id: str
