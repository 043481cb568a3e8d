"""Merging a guest's cart into the user's at sign-in, once, whatever is repeated or cut short.

Three steps, each safe to repeat: the guest cart's last event names the user's cart (its token dies
there), then the user's cart takes the guest's lines in one event whose id derives from the guest
cart, then the note of the merge under way goes. The note is written first, so a merge cut short
after the guest's last event is finished by the sweeper (`finish_interrupted`) if the client does
not repeat it; a repeated merge answers the report the first one kept.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from carts import changes
from carts.carts import Carts, Held
from carts.errors import CartNotFound
from carts.model import CartStatus
from carts.owners import guest_cart_id
from carts.store import Merge
from shopkit import clock

log = logging.getLogger("carts.merging")
# Longer than a merge request runs (its database calls time out sooner).
INTERRUPTED_AFTER = timedelta(minutes=1)


async def merge(carts: Carts, user_id: str, guest_token: str) -> tuple[Held, dict[str, Any]]:
    """The user's cart after taking in the guest's, and the report of what was capped or dropped."""
    guest = await _guest(carts, guest_token)
    target, _ = await carts.open_for_user(user_id)
    if guest.cart.status is CartStatus.MERGED and guest.cart.merged_into != target.id:
        raise CartNotFound("no cart has this token; it may have been merged or expired")
    await carts.store.merge_started(guest.id, target.id, user_id)
    guest = await carts.write(guest, changes.merge_away(target.id, clock.now()))
    target = await _take_in(carts, guest, target)
    await carts.store.merge_finished(guest.id)
    return target, target.cart.merges[guest.id]


async def _guest(carts: Carts, token: str) -> Held:
    held = await carts.get(guest_cart_id(token))
    if held is None or held.owner is not None or held.cart.status is CartStatus.CLOSED:
        raise CartNotFound("no cart has this token; it may have been merged or expired")
    return held


async def _take_in(carts: Carts, guest: Held, target: Held) -> Held:
    decision = changes.merge_in(guest.id, guest.cart.lines)
    return await carts.write(target, decision, event_id=f"merge-{guest.id}")


async def finish_interrupted(carts: Carts, limit: int = 100) -> int:
    """Finish the merges a crash cut short; how many there were. One that fails is logged and
    tried again at the next pass, and does not hold up the others."""
    finished = 0
    cut_off = clock.now() - INTERRUPTED_AFTER
    for under_way in await carts.store.merges_under_way(limit):
        if under_way.started_at > cut_off:
            continue  # probably still running
        try:
            finished += await _finish(carts, under_way)
        except Exception:
            log.exception("could not finish the merge of cart %s", under_way.guest_cart_id)
    return finished


async def _finish(carts: Carts, under_way: Merge) -> int:
    guest = await carts.get(under_way.guest_cart_id, remember=False)
    done = 0
    if guest is not None and guest.cart.merged_into == under_way.into:
        target = await carts.get(under_way.into)
        if target is None or target.cart.status is not CartStatus.OPEN:
            # The user's cart ended meanwhile: the lines go to the one they have now.
            target, _ = await carts.open_for_user(under_way.user_id)
        await _take_in(carts, guest, target)
        done = 1
        log.info("finished the merge of cart %s into %s", guest.id, target.id)
    # Not merged: the guest's last event never landed, the request failed, nothing to finish.
    await carts.store.merge_finished(under_way.guest_cart_id)
    return done
