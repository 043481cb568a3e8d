"""What a customer, a checkout or the sweeper may do to a cart: each a decision on the cart's state.

A decision refuses (a problem), does nothing (None) or names the one event to append; the kit's
`decide` runs it again on the newer state whenever another writer got there first, so nothing here
reads or writes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from carts.errors import (
    CartHeld,
    CartNotFound,
    CurrencyMismatch,
    InsufficientStock,
    LineLimit,
    LineNotFound,
    NotDue,
    PricesUnavailable,
    QuantityLimit,
)
from carts.events import OrderLine
from carts.model import MAX_LINES, MAX_QUANTITY, Cart, CartEvent, CartStatus, Line
from carts.pricing import Quote
from shopkit.events import NewEvent
from shopkit.versions import StaleVersion

Decision = Callable[[Cart], NewEvent | None]


def _writable(cart: Cart, expected: int | None) -> None:
    if cart.status is not CartStatus.OPEN:
        raise CartNotFound("this cart was merged or has expired")
    if expected is not None and expected != cart.version:
        raise StaleVersion(f"the cart is at version {cart.version}")


def _priced(quote: Quote, quantity: int) -> dict[str, Any]:
    assert quote.price is not None
    assert quote.title is not None
    return {
        "sku": quote.sku,
        "quantity": quantity,
        "price": quote.price.to_json(),
        "title": quote.title,
    }


def add(quote: Quote, quantity: int, *, expected: int | None, event_id: str | None) -> Decision:
    """`quantity` more of a SKU for sale: a new line, or more on the SKU's line."""

    def decision(cart: Cart) -> NewEvent:
        _writable(cart, expected)
        assert quote.price is not None
        if cart.currency is not None and quote.price.currency != cart.currency:
            raise CurrencyMismatch(
                f"{quote.sku} is priced in {quote.price.currency}; the cart holds {cart.currency}"
            )
        line = cart.line(quote.sku)
        held = line.quantity if line else 0
        if held + quantity > MAX_QUANTITY:
            raise QuantityLimit(
                f"the line holds {held}; a line holds at most {MAX_QUANTITY}",
                max_quantity=MAX_QUANTITY,
                quantity=held,
            )
        if line is None and len(cart.lines) >= MAX_LINES:
            raise LineLimit(f"a cart holds at most {MAX_LINES} lines", max_lines=MAX_LINES)
        _in_stock(quote, held + quantity)
        changes = [_priced(quote, held + quantity)]
        return NewEvent(CartEvent.LINE_ADDED, {"lines": changes}, id=event_id)

    return decision


def change(
    sku: str, quantity: int, quote: Quote | None, *, expected: int | None, event_id: str | None
) -> Decision:
    """The SKU's line holds `quantity` now. A quote refreshes the price the customer saw; raising a
    quantity needs one, lowering it does not."""

    def decision(cart: Cart) -> NewEvent | None:
        _writable(cart, expected)
        line = _line(cart, sku)
        if quantity > line.quantity:
            if quote is None:  # the line shrank meanwhile: raising it needs a live price
                raise PricesUnavailable(f"the price of {sku} cannot be checked right now")
            _in_stock(quote, quantity)
        # A live price in the line's currency becomes the one the customer saw.
        seen = quote.price if quote is not None and quote.for_sale else None
        if seen is not None and seen.currency != line.price.currency:
            seen = None
        if quantity == line.quantity and (seen is None or seen == line.price):
            return None
        update: dict[str, Any] = {"sku": sku, "quantity": quantity}
        if seen is not None and quote is not None:
            update |= {"price": seen.to_json(), "title": quote.title}
        return NewEvent(CartEvent.LINE_CHANGED, {"lines": [update]}, id=event_id)

    return decision


def remove(sku: str, *, expected: int | None, event_id: str | None) -> Decision:
    def decision(cart: Cart) -> NewEvent:
        _writable(cart, expected)
        _line(cart, sku)
        return NewEvent(
            CartEvent.LINE_REMOVED, {"lines": [{"sku": sku, "quantity": 0}]}, id=event_id
        )

    return decision


def empty(*, expected: int | None, event_id: str | None) -> Decision:
    def decision(cart: Cart) -> NewEvent | None:
        _writable(cart, expected)
        return NewEvent(CartEvent.EMPTIED, {}, id=event_id) if cart.lines else None

    return decision


def describe(
    changes: Mapping[str, str | None], *, expected: int | None, event_id: str | None
) -> Decision:
    """Set (or, with None, clear) the note, the guest's email, the ship-to country."""

    def decision(cart: Cart) -> NewEvent | None:
        _writable(cart, expected)
        if all(cart.details.get(name) == value for name, value in changes.items()):
            return None
        return NewEvent(CartEvent.DETAILS_CHANGED, {"details": dict(changes)}, id=event_id)

    return decision


# --- merging a guest cart into a user's


def merge_away(into: str, now: datetime) -> Decision:
    """The guest cart's last event: its lines go to cart `into`, its token dies. Not while an
    order holds it."""

    def decision(cart: Cart) -> NewEvent | None:
        if cart.status is CartStatus.MERGED and cart.merged_into == into:
            return None  # merged already: the merge is being repeated or finished
        if cart.status is not CartStatus.OPEN:
            raise CartNotFound("this guest cart was merged or has expired")
        if cart.checkout is not None and cart.checkout.holds(now):
            # Its order's payment takes the lines out of this cart: they must still be here.
            raise CartHeld(
                f"order {cart.checkout.order_id} is checking this cart out; merge it afterwards",
                order_id=cart.checkout.order_id,
            )
        return NewEvent(CartEvent.MERGED_AWAY, {"into": into})

    return decision


def merge_in(guest_cart_id: str, guest_lines: Sequence[Line]) -> Decision:
    """The guest's lines join the cart: quantities of one SKU add up to at most the per-line
    maximum; a line beyond the cart's limit or in another currency is dropped. The report says
    what was capped or dropped, and is kept in the cart for a repeated merge to answer."""

    def decision(cart: Cart) -> NewEvent | None:
        _writable(cart, None)
        if guest_cart_id in cart.merges:
            return None
        lines = {line.sku: line for line in cart.lines}
        currency = cart.currency
        changes: list[dict[str, Any]] = []
        added: list[dict[str, Any]] = []
        capped: list[dict[str, Any]] = []
        dropped: list[dict[str, Any]] = []
        for guest in guest_lines:
            currency = currency or guest.price.currency
            held = lines[guest.sku].quantity if guest.sku in lines else 0
            if guest.price.currency != currency:
                dropped.append({"sku": guest.sku, "quantity": guest.quantity, "reason": "currency"})
                continue
            if guest.sku not in lines and len(lines) >= MAX_LINES:
                dropped.append(
                    {"sku": guest.sku, "quantity": guest.quantity, "reason": "line_limit"}
                )
                continue
            kept = min(held + guest.quantity, MAX_QUANTITY)
            if kept < held + guest.quantity:
                capped.append({"sku": guest.sku, "requested": held + guest.quantity, "kept": kept})
            if kept > held:
                added.append({"sku": guest.sku, "quantity": kept - held})
            lines[guest.sku] = lines.get(guest.sku, guest)
            changes.append(
                {
                    "sku": guest.sku,
                    "quantity": kept,
                    "price": lines[guest.sku].price.to_json(),
                    "title": lines[guest.sku].title,
                }
            )
        report = {"added": added, "capped": capped, "dropped": dropped}
        return NewEvent(
            CartEvent.MERGED_IN,
            {"guest_cart_id": guest_cart_id, "lines": changes, "report": report},
            id=f"merge-{guest_cart_id}",
        )

    return decision


# --- checkout


def hold(order_id: str, expires_at: datetime, now: datetime, *, version: int) -> Decision:
    """A pending order holds the cart as it was at `version` (what the order priced): no other
    order may check it out until this one ends or its hold expires. Its lines are what it orders,
    and what its payment takes out of the cart."""

    def decision(cart: Cart) -> NewEvent | None:
        _writable(cart, None)
        if cart.checkout is not None and cart.checkout.holds(now):
            if cart.checkout.order_id == order_id:
                return None
            raise CartHeld(
                f"order {cart.checkout.order_id} is checking this cart out",
                order_id=cart.checkout.order_id,
            )
        if cart.version != version:
            raise StaleVersion("the cart changed while it was priced")
        lines = [{"sku": line.sku, "quantity": line.quantity} for line in cart.lines]
        return NewEvent(
            CartEvent.CHECKOUT_STARTED,
            {"order_id": order_id, "lines": lines, "expires_at": expires_at.isoformat()},
        )

    return decision


def paid(order_id: str, ordered: Sequence[OrderLine]) -> Decision:
    """The order was paid: what it ordered leaves the cart; a line added meanwhile stays, and so
    does any quantity beyond the ordered one. Once per order (its event id)."""

    def decision(cart: Cart) -> NewEvent:
        changes = []
        for item in ordered:
            line = cart.line(item.sku)
            if line is not None:
                changes.append({"sku": item.sku, "quantity": max(0, line.quantity - item.quantity)})
        return NewEvent(
            CartEvent.CHECKOUT_ENDED,
            {"order_id": order_id, "outcome": "paid", "lines": changes},
            id=f"paid-{order_id}",
        )

    return decision


def release(order_id: str, outcome: str) -> Decision:
    """The order ended unpaid (cancelled, expired, given up): the cart is free, unchanged."""

    def decision(cart: Cart) -> NewEvent | None:
        if cart.checkout is None or cart.checkout.order_id != order_id:
            return None
        return NewEvent(
            CartEvent.CHECKOUT_ENDED, {"order_id": order_id, "outcome": outcome, "lines": []}
        )

    return decision


# --- purging


def close(due: Callable[[Cart], bool]) -> Decision:
    """The sweeper ends a cart whose time is up; one changed meanwhile is not due any more."""

    def decision(cart: Cart) -> NewEvent | None:
        if cart.status is CartStatus.CLOSED:
            return None
        if cart.status is CartStatus.OPEN and not due(cart):
            raise NotDue("the cart changed since its purge was scheduled")
        return NewEvent(CartEvent.CLOSED, {"reason": "expired"})

    return decision


def _line(cart: Cart, sku: str) -> Line:
    line = cart.line(sku)
    if line is None:
        raise LineNotFound(f"the cart has no line for {sku}")
    return line


def _in_stock(quote: Quote, quantity: int) -> None:
    if quote.available is not None and quantity > quote.available:
        raise InsufficientStock(
            f"{quote.sku} has {max(quote.available, 0)} available",
            available=max(quote.available, 0),
        )
