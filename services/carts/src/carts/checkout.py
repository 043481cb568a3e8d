"""A cart in checkout: held for one pending order, emptied of what the order bought once it is paid.

orders holds the cart when it places an order (an internal route), and its events end the hold:
`order.paid` takes the ordered quantities out (a line added meanwhile stays), `order.cancelled` and
`order.expired` leave the cart as it was. A hold also ends by itself, after `CHECKOUT_HOLD`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from aiohttp import web

from carts import changes
from carts.carts import Carts, Held
from carts.errors import CartNotFound, CartNotReady
from carts.events import OrderEnded, OrderEvent, OrderPaid
from carts.keys import CARTS
from carts.model import CartStatus
from carts.pricing import Prices
from carts.view import present
from shopkit import broker, clock
from shopkit.events import Event
from shopkit.inbox import consume
from shopkit.versions import StaleVersion

log = logging.getLogger("carts.checkout")
ATTEMPTS = 3


async def hold(
    carts: Carts, prices: Prices, cart_id: str, order_id: str, hold_for: timedelta, currency: str
) -> tuple[Held, dict[str, Any], bool]:
    """Hold the cart for `order_id` if it can be checked out now (lines, every one for sale at a
    live price and in stock): the cart, its view, and whether this call made the hold."""
    for _ in range(ATTEMPTS):
        held = await carts.get(cart_id)
        if held is None or held.cart.status is not CartStatus.OPEN:
            raise CartNotFound(f"no open cart {cart_id}")
        checkout = held.cart.checkout
        if checkout is not None and checkout.order_id == order_id and checkout.holds(clock.now()):
            quotes = await prices.quotes([line.sku for line in held.cart.lines])
            return held, present(held, quotes, currency), False
        quotes = await prices.quotes([line.sku for line in held.cart.lines], live=True)
        view = present(held, quotes, currency)
        if not held.cart.lines:
            raise CartNotReady("the cart is empty", problems=[])
        if view["problems"]:
            raise CartNotReady(
                "some lines cannot be ordered as they are", problems=view["problems"]
            )
        now = clock.now()
        decision = changes.hold(order_id, now + hold_for, now, version=held.cart.version)
        try:
            after = await carts.write(held, decision)
        except StaleVersion:
            # The cart changed while its prices were checked: check again, from the stream.
            await carts.forget(cart_id)
            continue
        return after, present(after, quotes, currency), True
    raise CartNotReady("the cart keeps changing; retry", problems=[])


async def release(carts: Carts, cart_id: str, order_id: str, outcome: str) -> None:
    held = await carts.get(cart_id)
    if held is None:
        raise CartNotFound(f"no cart {cart_id}")
    await carts.write(held, changes.release(order_id, outcome))


async def on_order_event(app: web.Application, event: Event) -> None:
    """orders' events end a checkout; each changes its cart once (its event's id)."""
    carts = app[CARTS]
    try:
        if event.type == OrderEvent.PAID:
            paid = OrderPaid.from_json(event.data)
            decision = changes.paid(paid.order_id, paid.ordered)
            cart_id = paid.cart_id
        else:
            ended = OrderEnded.from_json(event.data)
            outcome = "cancelled" if event.type == OrderEvent.CANCELLED else "expired"
            decision, cart_id = changes.release(ended.order_id, outcome), ended.cart_id
    except (KeyError, TypeError, ValueError):
        # Redelivering it would not mend it: say so, and move on.
        log.warning("event %s (%s) names no cart and its lines; ignored", event.id, event.type)
        return
    held = await carts.get(str(cart_id))
    if held is None:
        log.info("%s for cart %s, which is gone", event.type, cart_id)
        return
    await carts.write(held, decision)


def order_consumer(
    service_name: str, orders_service: str
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The durable consumer of orders' events, as a background job of the app."""
    return consume(
        f"{service_name}-checkout",
        stream=orders_service,
        subjects=[broker.subject(orders_service, name) for name in OrderEvent],
        handler=on_order_event,
    )
