"""The reconciler: payments and refunds left unsettled are asked of Stripe, and Stripe's recent
events are replayed, so a lost webhook never loses a paid order.

Each payment, and each refund, is filed in `checks` under the 5-minute slot it is due in
(RECONCILE_AFTER after it began); a pass reads the slots since its last pass by equality (FerretDB
pushes down no range), looks at each due check, and files it again later or drops it once settled.
A pass also lists Stripe's events of the last RECONCILE_AFTER and feeds them to the webhook's
handler. Every step is idempotent: instances may overlap, at the cost of a few calls.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

from aiohttp import web

from payments import endings, intents, refunds, stripe_events
from payments.keys import PAYMENTS
from payments.ledger import Payments
from payments.model import FINAL, Intent, RefundStatus
from payments.store import Check, slots_between
from shopkit import clock
from shopkit.tasks import background

log = logging.getLogger("payments.reconciling")
# How far back the first pass of an instance looks for checks it was not there for.
WINDOW = timedelta(days=2)
# A record whose PaymentIntent was never made (orders gave up) is forgotten after this.
ABANDONED = timedelta(days=1)


class Reconciler:
    def __init__(self, payments: Payments, interval: float) -> None:
        self.payments = payments
        self.interval = interval
        self.swept_until: datetime | None = None

    async def step(self) -> None:
        now = clock.now()
        await self.check_due(now)
        await self.replay_events(now)
        await self.payments.store.purge_handled(now)

    async def check_due(self, now: datetime) -> int:
        """Look at every check due by `now`; how many."""
        start, seen = self.swept_until or now - WINDOW, 0
        async for check in self.payments.store.due(slots_between(start, now)):
            seen += 1
            try:
                await check_one(self.payments, check, now)
            except Exception:
                # One payment's trouble (Stripe down) must not stop the others: try it later.
                log.warning("check %s failed; retried later", check.id, exc_info=True)
                await self.payments.store.reschedule(check, now + self.payments.reconcile_after)
        self.swept_until = now
        return seen

    async def replay_events(self, now: datetime) -> None:
        lookback = self.payments.reconcile_after + timedelta(seconds=2 * self.interval)
        since = int((now - lookback).timestamp())
        listed = await self.payments.stripe.events_since(since)
        for event in reversed(listed):  # Stripe lists the newest first
            if not stripe_events.is_event(event):
                continue
            try:
                await stripe_events.handle(self.payments, event)
            except Exception:
                log.warning("Stripe event %s failed; retried later", event["id"], exc_info=True)


async def check_one(payments: Payments, check: Check, now: datetime) -> None:
    """Settle what can be settled of a check's payment or refund, then drop or refile it."""
    store, order_id = payments.store, check.order_id
    later = now + payments.reconcile_after
    if check.refund_id is not None:
        payment = await refunds.settle(payments, order_id, check.refund_id, ask_stripe=True)
        wanted = payment.refund(check.refund_id)
        if wanted is not None and wanted.status is RefundStatus.REQUESTED:
            await store.reschedule(check, later)
        else:
            await store.done(check)
        return
    payment, _ = await payments.load(order_id)
    ended = await store.has_ended(order_id)
    if not payment.exists:
        record = await store.record(order_id)
        if record is None or ended or record.created_at < now - ABANDONED:
            await store.done(check)
        else:
            await store.reschedule(check, later)
        return
    if payment.intent not in FINAL:
        assert payment.payment_intent_id is not None
        if ended:
            await endings.cancel(payments, order_id)
        else:
            answer = await payments.stripe.retrieve_intent(payment.payment_intent_id)
            await intents.retrieved(payments, order_id, answer)
        payment, _ = await payments.load(order_id)
    if payment.intent is Intent.SUCCEEDED and ended:
        await refunds.refund_ended_order(payments, order_id)
    if payment.intent in FINAL:
        await store.done(check)
    else:
        await store.reschedule(check, later)


def reconciler(interval: float) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx entry running the reconciler every `interval` seconds while the app lives."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        found, started = Reconciler(app[PAYMENTS], interval), False

        async def step(app: web.Application) -> None:
            # The first pass comes an interval after start: instances started together (a
            # deploy) do not all ask Stripe at once, and start-up stays quick.
            nonlocal started
            if started:
                await found.step()
            started = True

        async for _ in background("payments-reconciler", step, interval)(app):
            yield

    return context
