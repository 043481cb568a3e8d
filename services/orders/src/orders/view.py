"""An order as its customer and staff read it: money as {amount, currency}, the three statuses,
what may happen next, and its timeline (the order's stream: what, when, who)."""

from __future__ import annotations

from typing import Any

from orders.events import OrderEvent
from orders.model import Order
from shopkit import clock


def _who(order: Order, actor: str | None) -> str | None:
    """Who acted, as a customer may read it: themselves, the shop's staff, or the system (staff
    read the account or service itself)."""
    if actor is None:
        return None
    if actor == order.user_id or actor == "guest":
        return "customer"
    return "system" if actor.startswith(("system:", "service:")) else "staff"


def present(order: Order, *, staff: bool, client_secret: str | None = None) -> dict[str, Any]:
    currency = order.currency

    def who(actor: str | None) -> str | None:
        return actor if staff else _who(order, actor)

    def money(amount: int) -> dict[str, Any]:
        return {"amount": amount, "currency": currency}

    shipping = order.shipping
    return {
        "id": order.id,
        "number": order.number,
        "version": order.version,
        "status": order.status.value,
        "payment_status": order.payment_status.value,
        "fulfilment_status": order.fulfilment_status.value,
        "email": order.email,
        "customer_id": order.user_id,
        "currency": currency,
        "lines": [
            {
                "sku": line["sku"],
                "title": line["title"],
                "quantity": line["quantity"],
                "unit_price": money(line["unit_price"]),
                "total": money(line["total"]),
                "tax": money(line["tax"]),
            }
            for line in order.lines
        ],
        "shipping": {
            "method": shipping["method"],
            "name": shipping["name"],
            "price": money(shipping["amount"]),
            "tax": money(shipping["tax"]),
            "address": shipping["address"],
            "carrier": (order.shipment or {}).get("carrier"),
            "tracking_number": (order.shipment or {}).get("tracking_number"),
            "shipped_at": (order.shipment or {}).get("shipped_at"),
            "delivered_at": (order.shipment or {}).get("delivered_at"),
        },
        "subtotal": money(order.subtotal),
        "shipping_total": money(order.shipping_total),
        "tax_total": money(order.tax_total),
        "tax_inclusive": order.tax_inclusive,
        "total": money(order.total),
        "refunded": money(order.refunded),
        "refunds": [
            {**refund, "amount": money(refund["amount"]), "actor": who(refund["actor"])}
            for refund in order.refunds
        ],
        "disputes": [{**dispute, "amount": money(dispute["amount"])} for dispute in order.disputes],
        "note": order.note,
        "staff_notes": list(order.notes) if staff else [],
        "payment": {
            "payment_intent_id": order.payment_intent_id,
            "client_secret": client_secret,
        },
        "ended": {**order.ended, "actor": who(order.ended["actor"])} if order.ended else None,
        "allowed_actions": [action.value for action in order.actions(staff)],
        "timeline": [
            {**entry, "actor": who(entry["actor"])}
            for entry in order.timeline
            if staff or entry["type"] != OrderEvent.NOTE_ADDED
        ],
        "created_at": clock.rfc3339(order.created_at),
        "updated_at": clock.rfc3339(order.updated_at or order.created_at),
        "expires_at": clock.rfc3339(order.expires_at),
    }
