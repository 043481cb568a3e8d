"""Every change of a placed order, each one decision on its stream.

Staff and customers move an order through the actions its state allows (`Order.actions`); anything
else is refused with 409 naming what is allowed. payments' events move its payment status; the
sweeper expires unpaid orders and gives up checkouts that never placed theirs. Each decision is
idempotent: an event id derived from its cause (the Idempotency-Key, the payments event) makes a
repeat find what the first attempt appended.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

from aiohttp import web

from orders.errors import RefundTooLarge, TransitionNotAllowed
from orders.events import (
    NoteAdded,
    OrderDisputed,
    OrderEnded,
    OrderEvent,
    OrderRefund,
    OrderShipped,
    OrderStep,
    PaymentChanged,
    PaymentDisputed,
    PaymentEvent,
    RefundSettled,
)
from orders.keys import ORDERS
from orders.model import (
    Action,
    FulfilmentStatus,
    Order,
    OrderStatus,
    PaymentStatus,
)
from orders.orders import Orders, stream
from orders.store import OpenOrder
from shopkit import broker, clock
from shopkit.events import ConcurrencyConflict, Event, NewEvent
from shopkit.inbox import consume
from shopkit.tasks import background

log = logging.getLogger("orders.lifecycle")
SYSTEM = "system:orders"
# An order whose payment is processing is looked at again this often (it does not expire).
PROCESSING_RECHECK = timedelta(minutes=5)
FAILED_RECHECK = timedelta(minutes=1)
SWEEP_BATCH = 200


def _refuse(order: Order, action: Action, staff: bool) -> TransitionNotAllowed:
    state = f"{order.status}, payment {order.payment_status}, {order.fulfilment_status}"
    return TransitionNotAllowed(action, [str(a) for a in order.actions(staff)], state)


def _ended(order: Order, type: OrderEvent, reason: str, actor: str) -> NewEvent:
    payload = OrderEnded(order_id=order.id, cart_id=order.cart_id, reason=reason, actor=actor)
    return NewEvent(type, payload.to_json())


# --- what staff and customers ask


def cancel(actor: str, staff: bool, reason: str) -> Callable[[Order], NewEvent | None]:
    def decision(order: Order) -> NewEvent | None:
        if order.status is OrderStatus.CANCELLED:
            return None
        if not order.cancellable(staff):
            raise _refuse(order, Action.CANCEL, staff)
        return _ended(order, OrderEvent.CANCELLED, reason, actor)

    return decision


def ship(actor: str, carrier: str, tracking_number: str) -> Callable[[Order], NewEvent | None]:
    def decision(order: Order) -> NewEvent | None:
        shipment = order.shipment or {}
        if (
            order.fulfilment_status is FulfilmentStatus.SHIPPED
            and shipment.get("carrier") == carrier
            and shipment.get("tracking_number") == tracking_number
        ):
            return None
        if Action.SHIP not in order.actions(staff=True):
            raise _refuse(order, Action.SHIP, True)
        payload = OrderShipped(
            order_id=order.id, carrier=carrier, tracking_number=tracking_number, actor=actor
        )
        return NewEvent(OrderEvent.SHIPPED, payload.to_json())

    return decision


def deliver(actor: str) -> Callable[[Order], NewEvent | None]:
    def decision(order: Order) -> NewEvent | None:
        if order.fulfilment_status is FulfilmentStatus.DELIVERED:
            return None
        if Action.DELIVER not in order.actions(staff=True):
            raise _refuse(order, Action.DELIVER, True)
        return NewEvent(OrderEvent.DELIVERED, OrderStep(order_id=order.id, actor=actor).to_json())

    return decision


def request_refund(
    actor: str, refund_id: str, amount: int, reason: str
) -> Callable[[Order], NewEvent | None]:
    def decision(order: Order) -> NewEvent | None:
        if any(refund["refund_id"] == refund_id for refund in order.refunds):
            return None
        if Action.REFUND not in order.actions(staff=True):
            raise _refuse(order, Action.REFUND, True)
        if amount > order.refundable:
            raise RefundTooLarge(
                f"at most {order.refundable} is left to refund",
                refundable={"amount": order.refundable, "currency": order.currency},
            )
        payload = OrderRefund(
            order_id=order.id,
            refund_id=refund_id,
            amount=amount,
            currency=order.currency,
            reason=reason,
            actor=actor,
        )
        return NewEvent(
            OrderEvent.REFUND_REQUESTED, payload.to_json(), id=f"{order.id}:refund:{refund_id}"
        )

    return decision


def note(actor: str, text: str, note_id: str | None) -> Callable[[Order], NewEvent | None]:
    def decision(order: Order) -> NewEvent | None:
        payload = NoteAdded(order_id=order.id, text=text, actor=actor)
        return NewEvent(OrderEvent.NOTE_ADDED, payload.to_json(), id=note_id)

    return decision


# --- what payments reports


def payment_decision(event: Event) -> tuple[str, Callable[[Order], NewEvent | None]] | None:
    """The order a payments event is about, and what it does to it (None: not orders' concern)."""
    match event.type:
        case (
            PaymentEvent.SUCCEEDED
            | PaymentEvent.PROCESSING
            | PaymentEvent.FAILED
            | PaymentEvent.CANCELLED
        ):
            changed = PaymentChanged.from_json(event.data)
            return changed.order_id, _payment_moved(event.type, changed, event.id)
        case PaymentEvent.REFUND_SUCCEEDED | PaymentEvent.REFUND_FAILED:
            settled = RefundSettled.from_json(event.data)
            return settled.order_id, _refund_settled(event.type, settled, event.id)
        case PaymentEvent.DISPUTED:
            disputed = PaymentDisputed.from_json(event.data)
            return disputed.order_id, _disputed(disputed, event.id)
    return None


def _payment_moved(
    type: str, changed: PaymentChanged, cause: str
) -> Callable[[Order], NewEvent | None]:
    def decision(order: Order) -> NewEvent | None:
        if order.status is not OrderStatus.PENDING:
            # Paid already, or ended: payments gives back money that comes for an ended order.
            return None
        actor = "system:payments"
        if type == PaymentEvent.SUCCEEDED:
            return NewEvent(
                OrderEvent.PAID, {**order.paid_json(), "actor": actor}, id=f"{cause}:order"
            )
        if type == PaymentEvent.PROCESSING:
            if order.payment_status is PaymentStatus.PROCESSING:
                return None
            payload = OrderStep(order_id=order.id, actor=actor)
            return NewEvent(OrderEvent.PAYMENT_PROCESSING, payload.to_json(), id=f"{cause}:order")
        reason = "payment_failed" if type == PaymentEvent.FAILED else "payment_cancelled"
        ended = _ended(order, OrderEvent.CANCELLED, reason, actor)
        return NewEvent(ended.type, ended.data, id=f"{cause}:order")

    return decision


def _refund_settled(
    type: str, settled: RefundSettled, cause: str
) -> Callable[[Order], NewEvent | None]:
    def decision(order: Order) -> NewEvent | None:
        final = "succeeded" if type == PaymentEvent.REFUND_SUCCEEDED else "failed"
        if any(r["refund_id"] == settled.refund_id and r["status"] == final for r in order.refunds):
            return None
        payload = OrderRefund(
            order_id=order.id,
            refund_id=settled.refund_id,
            amount=settled.amount,
            currency=settled.currency,
            reason=settled.reason,
            actor="system:payments",
            refunded_total=settled.refunded_total,
        )
        kind = OrderEvent.REFUNDED if final == "succeeded" else OrderEvent.REFUND_FAILED
        return NewEvent(kind, payload.to_json(), id=f"{cause}:order")

    return decision


def _disputed(disputed: PaymentDisputed, cause: str) -> Callable[[Order], NewEvent | None]:
    def decision(order: Order) -> NewEvent | None:
        if any(d["dispute_id"] == disputed.dispute_id for d in order.disputes):
            return None
        payload = OrderDisputed(
            order_id=order.id,
            dispute_id=disputed.dispute_id,
            amount=disputed.amount,
            currency=disputed.currency,
            reason=disputed.reason,
        )
        return NewEvent(OrderEvent.DISPUTED, payload.to_json(), id=f"{cause}:order")

    return decision


class OrderNotYetPlaced(Exception):
    """A payments event for an order whose first event is not in yet: redelivered later."""


async def on_payment_event(app: web.Application, event: Event) -> None:
    decided = payment_decision(event)
    if decided is None:
        return
    order_id, decision = decided
    orders = app[ORDERS]
    order = await orders.get(order_id)
    if order is None:
        if await orders.first_event(order_id) is not None:
            log.info("%s for order %s, a checkout given up; nothing to do", event.type, order_id)
            return
        raise OrderNotYetPlaced(f"{event.type} for order {order_id}, not placed (yet)")
    changed = await orders.change(order, decision)
    await settle_watch(orders, changed.order)


def payment_consumer(
    service_name: str, payments_service: str
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The durable consumer of payments' events, as a background job of the app."""
    return consume(
        f"{service_name}-payments",
        stream=payments_service,
        subjects=[broker.subject(payments_service, name) for name in PaymentEvent],
        handler=on_payment_event,
    )


# --- the sweeper: unpaid orders expire, unfinished checkouts are given up


async def settle_watch(orders: Orders, order: Order) -> None:
    """Stop watching an order once nothing can be due for it any more."""
    if order.status is not OrderStatus.PENDING:
        await orders.store.untrack(order.id)


async def sweep(orders: Orders) -> int:
    """One pass over the due orders; how many ended."""
    now, ended = clock.now(), 0
    for due in await orders.store.due(now, SWEEP_BATCH):
        try:
            ended += await _sweep_one(orders, due, now)
        except Exception:
            # One order that cannot be moved now must not hold up the ones behind it: it is
            # looked at again a little later.
            log.exception("could not sweep order %s; retried later", due.order_id)
            with contextlib.suppress(Exception):
                await orders.store.reschedule(due.order_id, now + FAILED_RECHECK)
    return ended


async def _sweep_one(orders: Orders, due: OpenOrder, now: datetime) -> int:
    """Move one due order along; 1 if it ended."""
    order = await orders.get(due.order_id)
    if order is None:
        return await _give_up(orders, due.order_id, due.cart_id)
    if order.status is not OrderStatus.PENDING:
        await orders.store.untrack(order.id)
    elif order.expirable(now):
        changed = await orders.change(order, _expire(now))
        await settle_watch(orders, changed.order)
        return int(changed.event is not None)
    elif order.payment_status is PaymentStatus.PROCESSING:
        await orders.store.reschedule(order.id, now + PROCESSING_RECHECK)
    else:
        await orders.store.reschedule(order.id, order.expires_at)
    return 0


def _expire(now: datetime) -> Callable[[Order], NewEvent | None]:
    def decision(order: Order) -> NewEvent | None:
        if not order.expirable(now):
            return None
        return _ended(order, OrderEvent.EXPIRED, "not paid in time", SYSTEM)

    return decision


async def _give_up(orders: Orders, order_id: str, cart_id: str | None) -> int:
    """A checkout that never placed its order: its first slot gets a cancellation, which
    releases whatever it held (the reservation, the cart's hold, the PaymentIntent)."""
    payload = OrderEnded(
        order_id=order_id, cart_id=cart_id or "", reason="checkout_incomplete", actor=SYSTEM
    ).to_json()
    try:
        event = await orders.events.append(
            stream(order_id), 0, OrderEvent.CANCELLED, payload, f"{order_id}:given-up"
        )
    except ConcurrencyConflict:
        return 0  # placed meanwhile: the next pass sees it
    await orders.store.untrack(order_id)
    return int(event.type == OrderEvent.CANCELLED)


def sweeper(interval: float) -> Callable[[web.Application], AsyncIterator[None]]:
    async def step(app: web.Application) -> None:
        ended = await sweep(app[ORDERS])
        if ended:
            log.info("ended %d orders and checkouts", ended)

    return background("orders-sweeper", step, interval)
