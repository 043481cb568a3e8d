"""Orders that ended (cancelled, expired) get their money back, or are never charged.

The fact is recorded first (`ended_orders`), so that a payment that succeeds later, whatever
reports it, is refunded at once (`payments.intents`). Then a PaymentIntent not yet paid is
cancelled at Stripe (key `order:<id>:cancel`); one Stripe says is past cancelling is looked up and
recorded as it stands, and refunded in full if it succeeded (refund id `order-ended`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from payments import intents, refunds
from payments.events import OrderEnded, OrderEvent
from payments.gateway import UnexpectedState
from payments.keys import PAYMENTS
from payments.ledger import Payments
from payments.model import FINAL, Intent
from shopkit import broker, clock
from shopkit.events import Event
from shopkit.inbox import consume

log = logging.getLogger("payments.endings")


def cancel_key(order_id: str) -> str:
    return f"order:{order_id}:cancel"


async def end(payments: Payments, order_id: str, how: str) -> None:
    await payments.store.order_ended(order_id, how)
    payment, _ = await payments.load(order_id)
    if not payment.exists:
        return  # no PaymentIntent (yet): the reconciler cancels one made meanwhile
    if payment.intent is Intent.SUCCEEDED:
        await refunds.refund_ended_order(payments, order_id)
    elif payment.intent not in FINAL:
        await cancel(payments, order_id)


async def cancel(payments: Payments, order_id: str) -> None:
    """Cancel the order's PaymentIntent at Stripe, or record why it cannot be."""
    payment, _ = await payments.load(order_id)
    assert payment.payment_intent_id is not None
    try:
        answer = await payments.stripe.cancel_intent(
            payment.payment_intent_id, cancel_key(order_id)
        )
    except UnexpectedState:
        # Succeeded or processing: recorded as it stands (a success is then refunded).
        answer = await payments.stripe.retrieve_intent(payment.payment_intent_id)
        await intents.retrieved(payments, order_id, answer)
        return
    now = int(clock.now().timestamp())
    await intents.changed(payments, order_id, Intent.CANCELLED, answer, at=now, cause="order-ended")


async def on_order_event(app: web.Application, event: Event) -> None:
    try:
        ended = OrderEnded.from_json(event.data)
    except (KeyError, TypeError):
        log.warning("event %s (%s) names no order; ignored", event.id, event.type)
        return
    await end(app[PAYMENTS], ended.order_id, event.type)


def order_consumer(
    service_name: str, orders_service: str
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The durable consumer of orders' endings, as a background job of the app."""
    return consume(
        f"{service_name}-orders",
        stream=orders_service,
        subjects=[broker.subject(orders_service, name) for name in OrderEvent],
        handler=on_order_event,
    )
