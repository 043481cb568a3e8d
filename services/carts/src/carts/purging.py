"""The sweeper: carts whose time is up are closed, then their remains deleted; cut-short merges finished.

A cart is due when its record's `purge_on` has passed (`shopkit.sweeps`). Its stream decides: a cart
changed since it was scheduled is rescheduled; one still due gets a last event (`cart.closed`), so a
write racing the sweeper either lands before it (and the cart is not due) or finds the cart closed.
Its remains (the events, the record) go an hour later, when no write can still be in flight on it.
"""

from __future__ import annotations

import logging

from aiohttp import web

from carts import changes, merging
from carts.carts import Carts, Held
from carts.errors import NotDue
from carts.keys import CARTS
from carts.model import Cart, CartStatus
from carts.store import CartRecord
from shopkit import clock
from shopkit.tasks import background

log = logging.getLogger("carts.purging")
INTERVAL = 600.0
# How many past hours a sweep looks at, for what is purged by the hour (see shopkit.sweeps).
HOURS = 48


async def sweep(carts: Carts) -> int:
    """One pass; how many carts were closed or deleted."""
    await merging.finish_interrupted(carts)
    now, ended = clock.now(), 0
    async for record in carts.store.due(now, HOURS):
        held = await carts.get(record.id)
        if held is None:
            continue
        if not held.cart.exists:  # a record whose first write never came
            await _delete(carts, record)
            ended += 1
        elif carts.retention.expires_at(record.owner, held.cart) > now:
            # Changed since it was scheduled (or scheduled by an older snapshot).
            await carts.store.reschedule(
                record.id, carts.retention.purge_on(record.owner, held.cart)
            )
        elif held.cart.status is CartStatus.OPEN:
            await _close(carts, held)
            ended += 1
        else:
            await _delete(carts, record)
            ended += 1
    return ended


async def _close(carts: Carts, held: Held) -> None:
    now = clock.now()

    def due(cart: Cart) -> bool:
        return carts.retention.expires_at(held.owner, cart) <= now

    try:
        closed = await carts.write(held, changes.close(due))
    except NotDue:
        closed = await carts.get(held.id) or held
    else:
        if held.owner is not None:
            await carts.store.release_user_cart(held.owner, held.id)
    await carts.store.reschedule(held.id, carts.retention.purge_on(held.owner, closed.cart))


async def _delete(carts: Carts, record: CartRecord) -> None:
    if record.owner is not None:
        await carts.store.release_user_cart(record.owner, record.id)
    await carts.events.delete_stream(record.id)
    await carts.store.delete(record.id)
    await carts.forget(record.id)


async def _step(app: web.Application) -> None:
    ended = await sweep(app[CARTS])
    if ended:
        log.info("closed or deleted %d expired carts", ended)


sweeper = background("carts-sweeper", _step, INTERVAL)
"""A cleanup_ctx entry that purges expired carts every ten minutes."""
