"""An order, folded from its stream: three statuses kept apart, and the moves each state allows.

The order's own status (`pending` until paid, `placed`, `completed` once delivered, or it ended:
`cancelled`, `expired`), its payment's and its fulfilment's. `fold` applies one event; `actions`
says what may happen next, and the decisions in `lifecycle` refuse anything else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from orders.events import OrderEvent
from shopkit import clock
from shopkit.events import Event


class OrderStatus(StrEnum):
    PENDING = "pending"
    PLACED = "placed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    COMPLETED = "completed"


class PaymentStatus(StrEnum):
    AWAITING = "awaiting"
    PROCESSING = "processing"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    FAILED = "failed"


class FulfilmentStatus(StrEnum):
    UNFULFILLED = "unfulfilled"
    SHIPPED = "shipped"
    DELIVERED = "delivered"


class Action(StrEnum):
    """What a caller may ask of an order (`allowed_actions`)."""

    CANCEL = "cancel"
    SHIP = "ship"
    DELIVER = "deliver"
    REFUND = "refund"
    NOTE = "note"


ENDED = frozenset({OrderStatus.CANCELLED, OrderStatus.EXPIRED})
MONEY_IN = frozenset({PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED})


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    number: str
    cart_id: str
    user_id: str | None
    guest_key: str | None  # SHA-256 of the guest's cart token: what lets a guest read the order
    email: str
    currency: str
    lines: tuple[dict[str, Any], ...]
    shipping: dict[str, Any]
    subtotal: int
    shipping_total: int
    tax_total: int
    total: int
    tax_inclusive: bool
    note: str | None
    payment_intent_id: str
    created_at: datetime
    expires_at: datetime
    version: int = 0
    status: OrderStatus = OrderStatus.PENDING
    payment_status: PaymentStatus = PaymentStatus.AWAITING
    fulfilment_status: FulfilmentStatus = FulfilmentStatus.UNFULFILLED
    updated_at: datetime | None = None
    refunds: tuple[dict[str, Any], ...] = ()
    refunded: int = 0
    disputes: tuple[dict[str, Any], ...] = ()
    notes: tuple[dict[str, Any], ...] = ()
    shipment: dict[str, Any] | None = None
    ended: dict[str, Any] | None = None
    timeline: tuple[dict[str, Any], ...] = ()

    # --- what may happen next

    def actions(self, staff: bool) -> list[Action]:
        allowed: list[Action] = []
        if self.cancellable(staff):
            allowed.append(Action.CANCEL)
        if staff:
            # Nothing ships that was refunded in full.
            if (
                self.status is OrderStatus.PLACED
                and self.fulfilment_status is FulfilmentStatus.UNFULFILLED
                and self.payment_status in MONEY_IN
            ):
                allowed.append(Action.SHIP)
            if self.fulfilment_status is FulfilmentStatus.SHIPPED:
                allowed.append(Action.DELIVER)
            # An ended order's money goes back by itself (payments refunds what is left).
            if self.refundable > 0 and self.status not in ENDED:
                allowed.append(Action.REFUND)
            allowed.append(Action.NOTE)
        return allowed

    def cancellable(self, staff: bool) -> bool:
        """A customer may cancel while unpaid; staff also a paid order not yet shipped (it is
        refunded). An order whose payment is processing waits for its outcome."""
        if self.status is OrderStatus.PENDING:
            return self.payment_status is not PaymentStatus.PROCESSING
        return (
            staff
            and self.status is OrderStatus.PLACED
            and self.fulfilment_status is FulfilmentStatus.UNFULFILLED
        )

    @property
    def refundable(self) -> int:
        """What is left to refund: paid, less the refunds succeeded or under way."""
        if self.payment_status not in MONEY_IN:
            return 0
        spoken_for = sum(int(r["amount"]) for r in self.refunds if r["status"] != "failed")
        return max(self.total - spoken_for, 0)

    def expirable(self, now: datetime) -> bool:
        return (
            self.status is OrderStatus.PENDING
            and self.payment_status in (PaymentStatus.AWAITING, PaymentStatus.FAILED)
            and now >= self.expires_at
        )

    # --- the events' payloads

    def placed_json(self) -> dict[str, Any]:
        """`order.placed`: the order as placed, what `from_placed` reads back."""
        return {
            "order_id": self.id,
            "number": self.number,
            "cart_id": self.cart_id,
            "user_id": self.user_id,
            "guest_key": self.guest_key,
            "email": self.email,
            "currency": self.currency,
            "lines": list(self.lines),
            "shipping": self.shipping,
            "subtotal": self.subtotal,
            "shipping_total": self.shipping_total,
            "tax_total": self.tax_total,
            "total": self.total,
            "tax_inclusive": self.tax_inclusive,
            "note": self.note,
            "payment_intent_id": self.payment_intent_id,
            "created_at": clock.rfc3339(self.created_at),
            "expires_at": clock.rfc3339(self.expires_at),
        }

    @classmethod
    def from_placed(cls, data: dict[str, Any]) -> Order:
        return cls(
            id=data["order_id"],
            number=data["number"],
            cart_id=data["cart_id"],
            user_id=data["user_id"],
            guest_key=data["guest_key"],
            email=data["email"],
            currency=data["currency"],
            lines=tuple(data["lines"]),
            shipping=data["shipping"],
            subtotal=data["subtotal"],
            shipping_total=data["shipping_total"],
            tax_total=data["tax_total"],
            total=data["total"],
            tax_inclusive=data["tax_inclusive"],
            note=data["note"],
            payment_intent_id=data["payment_intent_id"],
            created_at=datetime.fromisoformat(data["created_at"]),
            expires_at=datetime.fromisoformat(data["expires_at"]),
        )

    def paid_json(self) -> dict[str, Any]:
        return {
            "order_id": self.id,
            "number": self.number,
            "cart_id": self.cart_id,
            "email": self.email,
            "currency": self.currency,
            "total": self.total,
            "lines": [{"sku": line["sku"], "quantity": line["quantity"]} for line in self.lines],
            "payment_intent_id": self.payment_intent_id,
        }


def fold(order: Order | None, event: Event) -> Order | None:
    """The order after `event`. A stream whose first event is a cancellation is a checkout that
    was given up before it placed anything: no order."""
    if event.type == OrderEvent.PLACED:
        order = Order.from_placed(event.data)
    if order is None:
        return None
    data = event.data
    changes: dict[str, Any] = {}
    match event.type:
        case OrderEvent.PAYMENT_PROCESSING:
            changes["payment_status"] = PaymentStatus.PROCESSING
        case OrderEvent.PAID:
            changes.update(status=OrderStatus.PLACED, payment_status=PaymentStatus.PAID)
        case OrderEvent.CANCELLED | OrderEvent.EXPIRED:
            changes["status"] = (
                OrderStatus.CANCELLED if event.type == OrderEvent.CANCELLED else OrderStatus.EXPIRED
            )
            changes["ended"] = {"reason": data["reason"], "actor": data["actor"], "at": _at(event)}
            if data["reason"] == "payment_failed":
                changes["payment_status"] = PaymentStatus.FAILED
        case OrderEvent.SHIPPED:
            changes["fulfilment_status"] = FulfilmentStatus.SHIPPED
            changes["shipment"] = {
                "carrier": data["carrier"],
                "tracking_number": data["tracking_number"],
                "shipped_at": _at(event),
                "delivered_at": None,
            }
        case OrderEvent.DELIVERED:
            changes.update(
                fulfilment_status=FulfilmentStatus.DELIVERED,
                status=OrderStatus.COMPLETED,
                shipment={**(order.shipment or {}), "delivered_at": _at(event)},
            )
        case OrderEvent.REFUND_REQUESTED:
            changes["refunds"] = (*order.refunds, _refund(data, "pending", event))
        case OrderEvent.REFUNDED | OrderEvent.REFUND_FAILED:
            status = "succeeded" if event.type == OrderEvent.REFUNDED else "failed"
            changes["refunds"] = _settle(order.refunds, data, status, event)
            if status == "succeeded":
                refunded = max(order.refunded, int(data["refunded_total"]))
                changes["refunded"] = refunded
                changes["payment_status"] = (
                    PaymentStatus.REFUNDED
                    if refunded >= order.total
                    else PaymentStatus.PARTIALLY_REFUNDED
                )
        case OrderEvent.DISPUTED:
            changes["disputes"] = (
                *order.disputes,
                {
                    "dispute_id": data["dispute_id"],
                    "amount": data["amount"],
                    "currency": data["currency"],
                    "reason": data["reason"],
                    "at": _at(event),
                },
            )
        case OrderEvent.NOTE_ADDED:
            changes["notes"] = (
                *order.notes,
                {"text": data["text"], "actor": data["actor"], "at": _at(event)},
            )
    entry = {
        "seq": event.seq,
        "type": str(event.type),
        "at": _at(event),
        "actor": data.get("actor"),
    }
    return dataclasses.replace(
        order,
        **changes,
        version=event.seq,
        updated_at=event.occurred_at,
        timeline=(*order.timeline, entry),
    )


def _at(event: Event) -> str:
    return clock.rfc3339(event.occurred_at)


def _refund(data: dict[str, Any], status: str, event: Event) -> dict[str, Any]:
    return {
        "refund_id": data["refund_id"],
        "amount": data["amount"],
        "reason": data["reason"],
        "status": status,
        "actor": data["actor"],
        "requested_at": _at(event),
        "settled_at": None,
    }


def _settle(
    refunds: tuple[dict[str, Any], ...], data: dict[str, Any], status: str, event: Event
) -> tuple[dict[str, Any], ...]:
    """The refund marked settled; one orders never asked for (given back automatically for an
    order that ended) is added as it is."""
    settled = [
        {**refund, "status": status, "settled_at": _at(event)}
        if refund["refund_id"] == data["refund_id"]
        else refund
        for refund in refunds
    ]
    if not any(refund["refund_id"] == data["refund_id"] for refund in refunds):
        settled.append({**_refund(data, status, event), "settled_at": _at(event)})
    return tuple(settled)


def to_state(order: Order) -> dict[str, Any]:
    """The order as a JSON-ready document (the projection's), what `from_state` reads back."""
    return {
        **order.placed_json(),
        "version": order.version,
        "status": order.status.value,
        "payment_status": order.payment_status.value,
        "fulfilment_status": order.fulfilment_status.value,
        "updated_at": clock.rfc3339(order.updated_at or order.created_at),
        "refunds": list(order.refunds),
        "refunded": order.refunded,
        "disputes": list(order.disputes),
        "notes": list(order.notes),
        "shipment": order.shipment,
        "ended": order.ended,
        "timeline": list(order.timeline),
    }


def from_state(state: dict[str, Any]) -> Order:
    return dataclasses.replace(
        Order.from_placed(state),
        version=state["version"],
        status=OrderStatus(state["status"]),
        payment_status=PaymentStatus(state["payment_status"]),
        fulfilment_status=FulfilmentStatus(state["fulfilment_status"]),
        updated_at=datetime.fromisoformat(state["updated_at"]),
        refunds=tuple(state["refunds"]),
        refunded=state["refunded"],
        disputes=tuple(state["disputes"]),
        notes=tuple(state["notes"]),
        shipment=state["shipment"],
        ended=state["ended"],
        timeline=tuple(state["timeline"]),
    )
