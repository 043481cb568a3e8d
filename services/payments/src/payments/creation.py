"""Creating an order's PaymentIntent: one per order, however often and concurrently asked.

The record (amount, currency, receipt email, Stripe idempotency key `order:<id>:create`) is
inserted before the first call, so every retry asks Stripe the same thing under the same key and
another amount for the order is refused. Calls for one order take turns: in one process through
a lock, across instances through a claim document, so Stripe sees one call while it answers; a
claim older than the longest a Stripe call may take (its holder died) is taken over, and then the
key makes Stripe answer the PaymentIntent it already made. The PaymentIntent is recorded as the
stream's first event (`payment.created`, the insert at seq 1 decides a race); its client secret
goes to a private collection first, never into an event.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime

from pymongo.errors import PyMongoError

from payments import model
from payments.errors import AmountTooSmall, OrderEnded, PaymentInProgress, PaymentMismatch
from payments.ledger import Payments, fresh
from payments.model import Payment
from payments.store import PaymentRecord
from shopkit import clock
from shopkit.money import MINIMUM_CHARGE

log = logging.getLogger("payments.creation")
CLAIM_POLL = 0.05
# A claim's release is tried this many times, this far apart, while the database is unreachable.
RELEASE_TRIES = 10
RELEASE_PAUSE = 0.5


def create_key(order_id: str) -> str:
    return f"order:{order_id}:create"


async def create(
    payments: Payments, order_id: str, amount: int, currency: str, email: str | None
) -> tuple[Payment, str, bool]:
    """The order's payment and its client secret; whether this call created it."""
    minimum = MINIMUM_CHARGE.get(currency)
    if minimum is not None and amount < minimum:
        raise AmountTooSmall(
            f"Stripe charges at least {minimum} (minor units) in {currency}", minimum=minimum
        )
    record = await payments.store.insert_record(
        PaymentRecord(order_id, amount, currency, email, create_key(order_id), clock.now())
    )
    if (record.amount, record.currency) != (amount, currency):
        raise PaymentMismatch(
            f"order {order_id} is paid with {record.amount} {record.currency}",
            amount=record.amount,
            currency=record.currency,
        )
    if await payments.store.has_ended(order_id):
        # A checkout given up while it ran late: no PaymentIntent for an order that is over.
        raise OrderEnded(f"order {order_id} was cancelled or expired; nothing to pay")
    budget = payments.stripe.budget
    try:
        async with payments.one_at_a_time(order_id, wait=budget):
            return await _create_once(payments, record, budget)
    except TimeoutError:
        raise PaymentInProgress(f"the payment of order {order_id} is being created") from None


async def _create_once(
    payments: Payments, record: PaymentRecord, budget: float
) -> tuple[Payment, str, bool]:
    store, order_id = payments.store, record.order_id
    payment, _ = await payments.load(order_id)
    if payment.exists:
        return payment, await client_secret(payments, payment), False
    # Before Stripe is asked: a PaymentIntent made and never recorded (a crash) is looked at.
    await store.schedule(order_id, None, clock.now() + payments.reconcile_after)
    owner, deadline = uuid.uuid4().hex, time.monotonic() + budget
    try:
        # Inside the `try`: a claim whose insert's answer was lost (the database went away) may
        # still have been written, and is let go below like one known to be ours.
        while (claim := await store.claim_creation(order_id, owner)) is not None:
            payment, _ = await payments.load(order_id)
            if payment.exists:
                return payment, await client_secret(payments, payment), False
            if claim["owner"] is not None and _age(claim["at"]) > budget:
                await store.release_creation(order_id, claim["owner"])  # its holder died
                continue
            if time.monotonic() > deadline:
                raise PaymentInProgress(f"the payment of order {order_id} is being created")
            await asyncio.sleep(CLAIM_POLL)
        # The claim's last holder may have recorded it just before letting go.
        payment, _ = await payments.load(order_id)
        if payment.exists:
            return payment, await client_secret(payments, payment), False
        intent = await payments.stripe.create_intent(
            order_id, record.amount, record.currency, record.email, record.idempotency_key
        )
        await store.name_intent(intent["id"], order_id)
        await store.keep_secret(order_id, intent["id"], intent["client_secret"])
        outcome = await payments.decide(
            order_id, model.created(order_id, intent["id"], record.amount, record.currency)
        )
    finally:
        await _let_go(payments, order_id, owner)
    made = fresh(outcome)
    if made:
        payments.metrics.created.labels(record.currency).inc()
    elif outcome.state.payment_intent_id != intent["id"]:
        # Only when the key expired at Stripe (a day) between two attempts.
        log.warning(
            "order %s got a second PaymentIntent %s; kept the first", order_id, intent["id"]
        )
    return outcome.state, await client_secret(payments, outcome.state), made


async def client_secret(payments: Payments, payment: Payment) -> str:
    """The PaymentIntent's client secret: kept when it was created, else asked of Stripe (when
    a webhook recorded the PaymentIntent first)."""
    secret = await payments.store.client_secret(payment.order_id)
    if secret is None:
        assert payment.payment_intent_id is not None
        intent = await payments.stripe.retrieve_intent(payment.payment_intent_id)
        secret = str(intent["client_secret"])
        await payments.store.keep_secret(payment.order_id, payment.payment_intent_id, secret)
    return secret


async def _let_go(payments: Payments, order_id: str, owner: str) -> None:
    """Release our claim (none held: nothing happens), retrying while the database is out of
    reach for a moment (a restart): a claim left behind blocks every retry of this checkout
    until it is older than the Stripe budget. Past RELEASE_TRIES, that age lets it go anyway."""
    for attempt in range(RELEASE_TRIES):
        try:
            await payments.store.release_creation(order_id, owner)
            return
        except PyMongoError:
            if attempt + 1 == RELEASE_TRIES:
                log.warning("the creation claim of order %s is left to expire", order_id)
                return
            await asyncio.sleep(RELEASE_PAUSE)


def _age(moment: datetime) -> float:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (clock.now() - moment).total_seconds()
