"""Carts as this process holds them: the last state read of each, one writer at a time per cart.

A cart's state is cached here (`Cache`, dropped on every other instance when one writes), so a read
costs no database trip and a write one insert: the decision's append proves the cached state was
current (its slot was free), and a conflict catches up with the stream before deciding again. One
process never races itself on a cart: a lock per cart orders its writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from carts.changes import Decision
from carts.errors import CartNotFound
from carts.metrics import CartMetrics
from carts.model import Cart, CartStatus, fold
from carts.owners import guest_cart_id, new_guest_token, new_user_cart_id
from carts.store import CartStore
from shopkit import clock, sweeps
from shopkit.cache import Cache
from shopkit.commits import STEP_SECONDS, AfterCommit
from shopkit.events import EventStore, StreamBusy, decide

log = logging.getLogger("carts")
SNAPSHOT_EVERY = 20
MAX_USERS_KNOWN = 100_000
# What is left of a merged guest cart stays a day, so that a merge repeated meanwhile answers as the
# first did; a closed cart's last event, an hour (no write can be in flight on it by then).
MERGED_KEPT = timedelta(days=1)
CLOSED_KEPT = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Retention:
    guest: timedelta
    user: timedelta
    empty: timedelta

    def expires_at(self, owner: str | None, cart: Cart) -> datetime:
        changed = cart.updated_at or clock.now()
        if cart.status is CartStatus.MERGED:
            return changed + MERGED_KEPT
        if cart.status is CartStatus.CLOSED:
            return changed + CLOSED_KEPT
        if not cart.lines:
            return changed + self.empty
        return changed + (self.user if owner else self.guest)

    def purge_on(self, owner: str | None, cart: Cart) -> str:
        # By the hour what goes within hours, by the day the rest.
        hourly = cart.status is not CartStatus.OPEN or not cart.lines
        return sweeps.purge_on(self.expires_at(owner, cart), hourly=hourly)


@dataclass(frozen=True, slots=True)
class Held:
    """A cart as this process last knew it, and what its record stores."""

    id: str
    owner: str | None
    cart: Cart
    saved_version: int
    purge_on: str


class Carts:
    def __init__(
        self,
        events: EventStore,
        store: CartStore,
        cache: Cache[Held],
        retention: Retention,
        after_commit: AfterCommit,
        metrics: CartMetrics | None = None,
    ) -> None:
        self.events, self.store, self.retention = events, store, retention
        self._cache = cache
        self._after_commit = after_commit
        self._metrics = metrics
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        # Which cart is whose: a user's cart changes only when the old one is purged.
        self._users: OrderedDict[str, str] = OrderedDict()

    async def get(self, cart_id: str, *, remember: bool = True) -> Held | None:
        """The cart as its stream has it, None when there is no such cart. `remember=False`
        keeps a cart read once (by the sweeper) out of the cache of the carts in use."""
        cached = self._cache.get(cart_id)
        if cached is not None:
            return cached
        epoch = self._cache.epoch()
        record = await self.store.get(cart_id)
        if record is None:
            return None
        cart = record.snapshot
        for event in await self.events.load(cart_id, after_seq=cart.version):
            cart = fold(cart, event)
        held = Held(cart_id, record.owner, cart, record.snapshot.version, record.purge_on)
        if remember:
            self._cache.put(cart_id, held, epoch)
        return held

    async def create(self, cart_id: str, owner: str | None) -> Held:
        """A new cart's record, written before its first event so the sweeper always finds it."""
        purge_on = self.retention.purge_on(owner, Cart())
        await self.store.create(cart_id, owner, purge_on)
        return Held(cart_id, owner, Cart(), 0, purge_on)

    async def write(self, held: Held, decision: Decision, *, event_id: str | None = None) -> Held:
        """Let `decision` change the cart (see `decide`); the cart after it."""
        async with self._exclusive(held.id):
            current = self._cache.get(held.id) or held
            # Drops from here on come from other instances' writes (this one's are ordered by
            # the lock): a value this write caches must not hide one of theirs.
            epoch = self._cache.epoch()
            outcome = await decide(
                self.events,
                held.id,
                current.cart,
                fold,
                decision,
                after_seq=current.cart.version,
                event_id=event_id,
            )
            if outcome.state.version == current.cart.version:
                return current
            after = replace(current, cart=outcome.state)
            # The append is the commit: what follows must not turn it into an error.
            # Unconfirmed: the gateway sends this cart's client back here (affinity); another
            # device's next read elsewhere meets the drop within moments.
            kept = await self._keep(after, epoch)
            purge_on = self.retention.purge_on(after.owner, after.cart)
            if (
                purge_on != after.purge_on
                or after.cart.version >= after.saved_version + SNAPSHOT_EVERY
            ):
                saved = await self._after_commit(
                    "cart snapshot", self.store.save(held.id, after.owner, after.cart, purge_on)
                )
                if saved:
                    after = replace(after, saved_version=after.cart.version, purge_on=purge_on)
                    if kept:  # else another instance's newer write made this state stale
                        self._cache.put(held.id, after, self._cache.epoch())
            return after

    async def _keep(self, after: Held, epoch: int) -> bool:
        """Cache the cart as this write left it, unless another instance wrote since `epoch`;
        whether it was kept."""
        try:
            async with asyncio.timeout(STEP_SECONDS):
                return await self._cache.replace(after.id, after, epoch, confirm=False)
        except Exception:
            # The write stands; what is cached here was dropped, so the next read reloads.
            log.warning("could not pass on a cart's change; peers expire it", exc_info=True)
            return False

    async def forget(self, cart_id: str) -> None:
        await self._cache.invalidate(cart_id)

    # --- whose cart

    async def of_guest(self, token: str) -> Held:
        """The open guest cart `token` opens; 404 for any other token."""
        held = await self.get(guest_cart_id(token))
        if held is None or held.owner is not None or held.cart.status is not CartStatus.OPEN:
            raise CartNotFound("no cart has this token; it may have been merged or expired")
        return held

    async def of_user(self, user_id: str) -> Held | None:
        """The user's open cart, None when they have none (yet, or any more)."""
        held = None
        known = self._users.get(user_id)
        if known is not None:
            held = await self._open(user_id, known)
        if held is None:
            named = await self.store.user_cart(user_id)
            held = await self._open(user_id, named) if named is not None else None
        if held is None:
            return None
        self._users[user_id] = held.id
        self._users.move_to_end(user_id)
        while len(self._users) > MAX_USERS_KNOWN:
            self._users.popitem(last=False)
        return held

    async def _open(self, user_id: str, cart_id: str) -> Held | None:
        held = await self.get(cart_id)
        if held is None or held.cart.status is not CartStatus.OPEN:
            # Purged: the user's next write starts a new cart.
            self._users.pop(user_id, None)
            await self.store.release_user_cart(user_id, cart_id)
            return None
        return held

    async def open_for_user(self, user_id: str) -> tuple[Held, bool]:
        """The user's open cart, made when they have none; whether it was made now."""
        held = await self.of_user(user_id)
        if held is not None:
            return held, False
        made = await self.create(new_user_cart_id(), user_id)
        # Two devices may both get here: the first claim names the user's cart, the other
        # record stays empty and goes with the sweeper.
        named = await self.store.claim_user_cart(user_id, made.id)
        if named == made.id:
            self._count_opened("user")
            return made, True
        held = await self.of_user(user_id)
        if held is None:
            raise StreamBusy("the cart is being replaced; retry")
        return held, False

    async def open_for_guest(self) -> tuple[Held, str]:
        """A new guest cart and its token."""
        token = new_guest_token()
        made = await self.create(guest_cart_id(token), None)
        self._count_opened("guest")
        return made, token

    def _count_opened(self, owner: str) -> None:
        if self._metrics is not None:
            self._metrics.opened.labels(owner).inc()

    @contextlib.asynccontextmanager
    async def _exclusive(self, cart_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(cart_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[cart_id]
