"""Mongo access beyond the payment streams: each order's payment record and the private lookups.

- `payments`: the record inserted before the first call to Stripe (`_id` = order id): amount,
  currency, receipt email and the Stripe idempotency key, so every retry asks Stripe the same.
- `client_secrets`: the PaymentIntent's client secret (never in an event: events are published).
- `payment_intents`: which order a PaymentIntent belongs to (`_id` = its id), for webhooks.
- `stripe_refunds`: the Stripe id of each refund (`_id` = `<order>:<refund id>`), by Stripe id too.
- `ended_orders`: orders that were cancelled or expired: their money goes back.
- `checks`: what the reconciler must look at, under the 5-minute slot it is due in (`due`).
- `create_claims`: a PaymentIntent being created now, so concurrent calls wait for one Stripe call.
- `stripe_events`: the Stripe events handled, recorded after acting (`purge_on`, a month).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shopkit import clock, sweeps

# The reconciler's slots: a check is filed under the slot its due moment falls in, and a pass
# reads the slots since its last one by equality (FerretDB pushes down no range).
SLOT_SECONDS = 300
STRIPE_EVENT_RETENTION = timedelta(days=30)


def slot(moment: datetime) -> str:
    """The 5-minute slot of `moment`, as `2026-12-03T14:05`."""
    moment = moment.astimezone(UTC)
    start = moment.replace(minute=moment.minute - moment.minute % 5, second=0, microsecond=0)
    return start.strftime("%Y-%m-%dT%H:%M")


def slots_between(start: datetime, end: datetime) -> list[str]:
    """Every slot from the one of `start` to the one of `end`, oldest first."""
    found, moment = [], start
    while moment <= end:
        found.append(slot(moment))
        moment += timedelta(seconds=SLOT_SECONDS)
    if not found or found[-1] != slot(end):
        found.append(slot(end))
    return found


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    order_id: str
    amount: int
    currency: str
    email: str | None
    idempotency_key: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    order_id: str
    refund_id: str | None  # None: the payment itself


class PaymentStore:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.records = db["payments"]
        self.secrets = db["client_secrets"]
        self.intents = db["payment_intents"]
        self.refunds = db["stripe_refunds"]
        self.ended = db["ended_orders"]
        self.checks = db["checks"]
        self.claims = db["create_claims"]
        self.stripe_events = db["stripe_events"]

    async def ensure_indexes(self) -> None:
        await self.refunds.create_index("stripe_refund_id")
        await self.checks.create_index("due")
        await sweeps.ensure_index(self.stripe_events)

    # --- records

    async def insert_record(self, record: PaymentRecord) -> PaymentRecord:
        """Insert the record unless the order has one; the one stored."""
        try:
            await self.records.insert_one(
                {
                    "_id": record.order_id,
                    "amount": record.amount,
                    "currency": record.currency,
                    "email": record.email,
                    "idempotency_key": record.idempotency_key,
                    "created_at": record.created_at,
                }
            )
        except DuplicateKeyError:
            stored = await self.record(record.order_id)
            if stored is None:  # cannot be: records are never deleted
                raise
            return stored
        return record

    async def record(self, order_id: str) -> PaymentRecord | None:
        found = await self.records.find_one({"_id": order_id})
        if found is None:
            return None
        created_at = found["created_at"]
        return PaymentRecord(
            order_id=found["_id"],
            amount=found["amount"],
            currency=found["currency"],
            email=found["email"],
            idempotency_key=found["idempotency_key"],
            created_at=created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC),
        )

    # --- the PaymentIntent's private facts

    async def keep_secret(self, order_id: str, payment_intent_id: str, secret: str) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.secrets.insert_one(
                {"_id": order_id, "payment_intent_id": payment_intent_id, "client_secret": secret}
            )

    async def client_secret(self, order_id: str) -> str | None:
        found = await self.secrets.find_one({"_id": order_id})
        return str(found["client_secret"]) if found is not None else None

    async def name_intent(self, payment_intent_id: str, order_id: str) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.intents.insert_one({"_id": payment_intent_id, "order_id": order_id})

    async def order_of_intent(self, payment_intent_id: str) -> str | None:
        found = await self.intents.find_one({"_id": payment_intent_id})
        return str(found["order_id"]) if found is not None else None

    async def name_refund(self, order_id: str, refund_id: str, stripe_refund_id: str) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.refunds.insert_one(
                {
                    "_id": f"{order_id}:{refund_id}",
                    "order_id": order_id,
                    "refund_id": refund_id,
                    "stripe_refund_id": stripe_refund_id,
                }
            )

    async def stripe_refund_id(self, order_id: str, refund_id: str) -> str | None:
        found = await self.refunds.find_one({"_id": f"{order_id}:{refund_id}"})
        return str(found["stripe_refund_id"]) if found is not None else None

    async def refund_of(self, stripe_refund_id: str) -> tuple[str, str] | None:
        """The order and refund id of a Stripe refund the platform asked for."""
        found = await self.refunds.find_one({"stripe_refund_id": stripe_refund_id})
        return (str(found["order_id"]), str(found["refund_id"])) if found is not None else None

    # --- orders that ended

    async def order_ended(self, order_id: str, how: str) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.ended.insert_one({"_id": order_id, "how": how, "at": clock.now()})

    async def has_ended(self, order_id: str) -> bool:
        return await self.ended.find_one({"_id": order_id}, {"_id": 1}) is not None

    # --- the reconciler's schedule

    async def schedule(self, order_id: str, refund_id: str | None, due: datetime) -> None:
        """File a check of the payment (or one refund of it) under the slot of `due`, unless filed."""
        with contextlib.suppress(DuplicateKeyError):
            await self.checks.insert_one(
                {
                    "_id": _check_id(order_id, refund_id),
                    "order_id": order_id,
                    "refund_id": refund_id,
                    "due": slot(due),
                }
            )

    async def reschedule(self, check: Check, due: datetime) -> None:
        await self.checks.update_one({"_id": check.id}, {"$set": {"due": slot(due)}})

    async def done(self, check: Check) -> None:
        await self.checks.delete_one({"_id": check.id})

    async def done_with(self, order_id: str, refund_id: str | None) -> None:
        await self.checks.delete_one({"_id": _check_id(order_id, refund_id)})

    def due(self, slots: list[str]) -> AsyncIterator[Check]:
        async def checks() -> AsyncIterator[Check]:
            for due in slots:
                # The slot's checks are read before any is yielded: the caller moves them on.
                for found in await self.checks.find({"due": due}).to_list():
                    yield Check(found["_id"], found["order_id"], found.get("refund_id"))

        return checks()

    # --- creating a PaymentIntent

    async def claim_creation(self, order_id: str, owner: str) -> dict[str, Any] | None:
        """Claim the creation of the order's PaymentIntent; None when claimed now, else the claim
        that holds it."""
        try:
            await self.claims.insert_one({"_id": order_id, "owner": owner, "at": clock.now()})
        except DuplicateKeyError:
            found = await self.claims.find_one({"_id": order_id})
            return found if found is not None else {"_id": order_id, "owner": None}
        return None

    async def release_creation(self, order_id: str, owner: str) -> None:
        await self.claims.delete_one({"_id": order_id, "owner": owner})

    # --- Stripe events handled

    async def handled(self, stripe_event_id: str) -> bool:
        return await self.stripe_events.find_one({"_id": stripe_event_id}, {"_id": 1}) is not None

    async def mark_handled(self, stripe_event_id: str, event_type: str, outcome: str) -> None:
        now = clock.now()
        with contextlib.suppress(DuplicateKeyError):
            await self.stripe_events.insert_one(
                {
                    "_id": stripe_event_id,
                    "type": event_type,
                    "outcome": outcome,
                    "at": now,
                    sweeps.FIELD: sweeps.purge_on(now + STRIPE_EVENT_RETENTION),
                }
            )

    async def purge_handled(self, now: datetime) -> int:
        return await sweeps.purge(self.stripe_events, now)


def _check_id(order_id: str, refund_id: str | None) -> str:
    return f"{order_id}:payment" if refund_id is None else f"{order_id}:refund:{refund_id}"
