"""A cart as its stream folds it: lines, details, the checkout holding it; and the stream's event types.

A cart is the private stream `<cart id>` in `cart_events` (no outbox: nothing else listens to a
cart's every change). Every event that touches lines names each touched line's new quantity (0 to
remove it), so the fold only sets what the decision computed: caps and merges are decided once, on
the state they were decided on, never recomputed by a reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from shopkit.events import Event
from shopkit.money import Money

MAX_QUANTITY = 99
MAX_LINES = 100


class CartEvent(StrEnum):
    LINE_ADDED = "line.added"
    LINE_CHANGED = "line.changed"
    LINE_REMOVED = "line.removed"
    EMPTIED = "cart.emptied"
    DETAILS_CHANGED = "details.changed"
    MERGED_IN = "cart.merged_in"
    MERGED_AWAY = "cart.merged_away"
    CHECKOUT_STARTED = "checkout.started"
    CHECKOUT_ENDED = "checkout.ended"
    CLOSED = "cart.closed"


class CartStatus(StrEnum):
    OPEN = "open"
    MERGED = "merged"  # a guest cart merged into a user's: its token is dead
    CLOSED = "closed"  # purged: what remains of it goes with the next sweep


class Detail(StrEnum):
    """What a customer tells the cart besides its lines (checkout reads the last two)."""

    NOTE = "note"
    EMAIL = "email"
    SHIP_TO_COUNTRY = "ship_to_country"


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    quantity: int
    # The price the customer last saw for this line (when adding or changing it): a later price
    # is flagged against it.
    price: Money
    title: str
    added_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "quantity": self.quantity,
            "price": self.price.to_json(),
            "title": self.title,
            "added_at": self.added_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Line:
        return cls(
            sku=data["sku"],
            quantity=int(data["quantity"]),
            price=Money(**data["price"]),
            title=data["title"],
            added_at=datetime.fromisoformat(data["added_at"]),
        )


@dataclass(frozen=True, slots=True)
class Checkout:
    """The pending order holding the cart, and what it ordered (removed from the cart once paid)."""

    order_id: str
    lines: dict[str, int]
    expires_at: datetime

    def holds(self, now: datetime) -> bool:
        return now < self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "lines": [{"sku": sku, "quantity": qty} for sku, qty in self.lines.items()],
            "expires_at": self.expires_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkout:
        return cls(
            order_id=data["order_id"],
            lines={line["sku"]: int(line["quantity"]) for line in data["lines"]},
            expires_at=datetime.fromisoformat(data["expires_at"]),
        )


@dataclass(frozen=True, slots=True)
class Cart:
    lines: tuple[Line, ...] = ()
    details: dict[str, str] = field(default_factory=dict)
    checkout: Checkout | None = None
    status: CartStatus = CartStatus.OPEN
    merged_into: str | None = None
    # The report of each guest cart merged in, by guest cart id: a repeated merge answers it.
    merges: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0  # the seq of the last event folded in: the cart's ETag

    @property
    def exists(self) -> bool:
        return self.created_at is not None

    @property
    def currency(self) -> str | None:
        return self.lines[0].price.currency if self.lines else None

    def line(self, sku: str) -> Line | None:
        return next((line for line in self.lines if line.sku == sku), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "lines": [line.to_json() for line in self.lines],
            "details": dict(self.details),
            "checkout": self.checkout.to_json() if self.checkout else None,
            "status": self.status.value,
            "merged_into": self.merged_into,
            "merges": dict(self.merges),
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "version": self.version,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cart:
        def moment(value: str | None) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        return cls(
            lines=tuple(Line.from_json(line) for line in data["lines"]),
            details=dict(data["details"]),
            checkout=Checkout.from_json(data["checkout"]) if data["checkout"] else None,
            status=CartStatus(data["status"]),
            merged_into=data["merged_into"],
            merges=dict(data["merges"]),
            created_at=moment(data["created_at"]),
            updated_at=moment(data["updated_at"]),
            version=int(data["version"]),
        )


def fold(cart: Cart, event: Event) -> Cart:
    """The cart after `event`."""
    data = event.data
    cart = replace(
        cart,
        created_at=cart.created_at or event.occurred_at,
        updated_at=event.occurred_at,
        version=event.seq,
    )
    match event.type:
        case CartEvent.LINE_ADDED | CartEvent.LINE_CHANGED | CartEvent.LINE_REMOVED:
            return _set_lines(cart, data["lines"], event.occurred_at)
        case CartEvent.EMPTIED:
            return replace(cart, lines=())
        case CartEvent.DETAILS_CHANGED:
            details = {**cart.details, **data["details"]}
            return replace(cart, details={k: v for k, v in details.items() if v is not None})
        case CartEvent.MERGED_IN:
            cart = _set_lines(cart, data["lines"], event.occurred_at)
            return replace(cart, merges={**cart.merges, data["guest_cart_id"]: data["report"]})
        case CartEvent.MERGED_AWAY:
            return replace(cart, status=CartStatus.MERGED, merged_into=data["into"])
        case CartEvent.CHECKOUT_STARTED:
            return replace(cart, checkout=Checkout.from_json(data))
        case CartEvent.CHECKOUT_ENDED:
            cart = _set_lines(cart, data["lines"], event.occurred_at)
            ended = cart.checkout is not None and cart.checkout.order_id == data["order_id"]
            return replace(cart, checkout=None) if ended else cart
        case CartEvent.CLOSED:
            return replace(cart, status=CartStatus.CLOSED)
    return cart


def _set_lines(cart: Cart, changes: list[dict[str, Any]], at: datetime) -> Cart:
    """Each change names a line's new quantity (0 removes it), and its price and title when the
    customer saw new ones; a new line goes last, an existing one keeps its place."""
    lines = {line.sku: line for line in cart.lines}
    for change in changes:
        sku, quantity = change["sku"], int(change["quantity"])
        current = lines.get(sku)
        if quantity <= 0:
            lines.pop(sku, None)
        elif current is None:
            lines[sku] = Line(sku, quantity, Money(**change["price"]), change["title"], at)
        else:
            price = Money(**change["price"]) if "price" in change else current.price
            title = change.get("title", current.title)
            lines[sku] = replace(current, quantity=quantity, price=price, title=title)
    return replace(cart, lines=tuple(lines.values()))
