"""The order events inventory follows: a paid order commits its stock, a cancelled or expired one
releases it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from products.events import OrderClosed, OrderEvent
from products.inventory.errors import ReservationClosed, ReservationNotFound
from products.inventory.keys import INVENTORY
from shopkit import broker
from shopkit.events import Event
from shopkit.inbox import consume

log = logging.getLogger("products.inventory")


async def on_order_event(app: web.Application, event: Event) -> None:
    """orders' `order.paid` commits the order's stock; `order.cancelled` and `order.expired`
    release it, and a cancelled order whose stock was committed (paid, not shipped) puts it back
    on the shelf. All are idempotent, so a redelivered event changes nothing."""
    try:
        order_id = OrderClosed.from_json(event.data).order_id
    except KeyError:
        order_id = None
    if not isinstance(order_id, str) or not order_id:
        log.warning("event %s (%s) names no order; ignored", event.id, event.type)
        return
    inventory = app[INVENTORY]
    try:
        if event.type == OrderEvent.PAID:
            await inventory.commit(order_id, "service:orders", event.type)
        else:
            await inventory.release(order_id, "service:orders", event.type)
    except ReservationNotFound:
        log.info("order %s has no reservation; %s changes no stock", order_id, event.type)
    except ReservationClosed as closed:
        if event.type == OrderEvent.CANCELLED:
            # Paid, then cancelled before it shipped: the units it took are on the shelf again.
            restocked = await inventory.restock(order_id, "service:orders", "order cancelled")
            if restocked:
                return
        level = logging.ERROR if event.type == OrderEvent.PAID else logging.WARNING
        log.log(level, "%s for order %s changed no stock: %s", event.type, order_id, closed.detail)


def order_consumer(
    service_name: str, orders_service: str
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The durable consumer of orders' events, as a background job of the app."""
    return consume(
        f"{service_name}-inventory",
        stream=orders_service,
        subjects=[broker.subject(orders_service, name) for name in OrderEvent],
        handler=on_order_event,
    )
