"""Proves the platform's invariants after a load run, from its databases and what reached Stripe."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from orders.events import OrderEvent
from orders.model import Order
from orders.model import fold as fold_order
from orders.orders import stream as order_stream
from orders.store import OrderStore
from payments.events import PaymentEvent, RefundEvent
from payments.model import Intent, Payment, RefundStatus
from payments.model import fold as fold_payment
from payments.model import stream_id as payment_stream
from payments.store import PaymentRecord, PaymentStore
from products.events import Movement
from products.inventory.ledger import Ledger, fold_all
from products.inventory.ledger import fold as fold_stock
from products.inventory.reservation import Reservation, ReservationState, fold_reservation
from products.inventory.reservations import RESERVATIONS_COLLECTION, reservation_stream
from products.inventory.stock import ledger_stream
from products.inventory.store import InventoryStore
from products.inventory.sweeper import STUCK_AFTER
from shopkit import clock
from shopkit.events import Event, EventStore

# Each service's database is named after it where MONGO_DATABASE is unset (the local stack);
# the end-to-end tests name theirs (`databases`).
SERVICE_DATABASES: Mapping[str, str] = {name: name for name in ("products", "orders", "payments")}
# The sweeper passes every second (SWEEP_INTERVAL) and counts an entry stuck once it is this far
# overdue: a reservation open for less past its expiry may only be waiting for its pass.
EXPIRY_GRACE: timedelta = STUCK_AFTER
# Streams are read slot by slot (an `_id` read each, the one read FerretDB serves from an index):
# this many at once keeps thousands of streams quick without swamping the database.
CONCURRENCY = 16
# Per operation; a day's orders are one cursor, whose whole life this bounds.
TIMEOUT_MS = 30_000
SHOWN = 5  # offenders named in a failing verdict
STILL_OPEN = frozenset({ReservationState.REQUESTED, ReservationState.HELD})
LINE_ENDS = frozenset({Movement.RELEASED, Movement.COMMITTED})
REFUND_EVENTS = frozenset(RefundEvent)


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str  # short, e.g. "units sold equal units committed"
    passed: bool
    detail: str  # one line: the counts that prove it, or the first few offenders


@dataclass(frozen=True, slots=True)
class _Case:
    """One order in scope: its three streams, folded, and its payment record."""

    order_id: str
    order: Order | None  # None: a checkout given up before it placed the order
    order_events: tuple[Event, ...]
    payment: Payment
    payment_events: tuple[Event, ...]
    reservation: Reservation | None
    record: PaymentRecord | None

    @property
    def paid(self) -> bool:
        # Reached paid, whatever came after (shipped, refunded, even cancelled: stock stays sold
        # and a cancellation restocks it by a receipt, never by undoing the commit).
        return any(event.type == OrderEvent.PAID for event in self.order_events)


@dataclass(frozen=True, slots=True)
class _Run:
    ledgers: Mapping[str, tuple[Event, ...]]  # SKU: its whole stock stream
    cases: Mapping[str, _Case]
    # Order id: its creations that reached Stripe, one per Idempotency-Key.
    intents: Mapping[str, list[Mapping[str, str]]]
    refunds: Mapping[str, list[Mapping[str, str]]]


async def check(
    mongo_url: str,
    stripe_requests: Sequence[Mapping[str, Any]],
    skus: Collection[str],
    *,
    since: datetime,
    databases: Mapping[str, str] = SERVICE_DATABASES,
) -> list[Verdict]:
    """Check the invariants over the orders created at or after `since` with a line of `skus`,
    and every order that moved those SKUs' stock. Call it once the run's events have settled
    (consumers caught up), or a paid order's commit may still be on its way.

    1. Units sold (lines of orders with an `order.paid` event) equal the units `stock.committed`
       took for those orders, order by order and SKU by SKU.
    2. Folding each SKU's ledger as products does, on hand and available never fell below 0.
    3. A paid order had one PaymentIntent creation reach Stripe (one Idempotency-Key) for its
       total and currency, its payment stream holds one `payment.succeeded` of that amount on the
       order's PaymentIntent, and its payment record asks that amount.
    4. Refunds not failed in the payment stream, refund creations that reached Stripe (one per
       key), and what orders counts refunded each stay within what was paid.
    5. Effects once: per order, SKU and attempt one `stock.reserved` and at most one release or
       commit after it; one commit per order and SKU; at most one `order.paid` per order; at most
       one `payment.created` and `payment.succeeded` per payment, one request and one settlement
       per refund; at most one Idempotency-Key creating each order's PaymentIntent.
    6. No reservation is still requested or held, in its stream or as a ledger hold, more than
       EXPIRY_GRACE past its expiry.
    """
    since = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, tz_aware=True, timeoutMS=TIMEOUT_MS, serverSelectionTimeoutMS=5000
    )
    try:
        run = await _read(client, stripe_requests, set(skus), since, databases)
    finally:
        await client.close()
    return [_units(run), _stock(run), _payments(run), _refunds(run), _once(run), _expired(run)]


async def unsettled(
    client: AsyncMongoClient[Any],
    skus: Collection[str],
    databases: Mapping[str, str] = SERVICE_DATABASES,
) -> int:
    """How many orders still hold stock of `skus` though their payment succeeded: the effects of
    a webhook (`order.paid`, then the commit) still on their way. `check` wants 0 first."""
    products, store = client[databases["products"]], EventStore(client[databases["payments"]])
    snapshots, stock = InventoryStore(products), EventStore(products)
    held: set[str] = set()
    for sku in skus:
        # The snapshot and the events after it, as products itself reads a ledger.
        ledger, seq = await snapshots.snapshot(sku) or (Ledger(), 0)
        ledger, _ = fold_all(ledger, seq, await stock.load(ledger_stream(sku), seq))
        held |= ledger.holds.keys()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def succeeded(order_id: str) -> bool:
        async with gate:
            events = await store.load(payment_stream(order_id))
        return any(event.type == PaymentEvent.SUCCEEDED for event in events)

    return sum(await asyncio.gather(*map(succeeded, held)))


async def _read(
    client: AsyncMongoClient[dict[str, Any]],
    requests: Sequence[Mapping[str, Any]],
    skus: set[str],
    since: datetime,
    databases: Mapping[str, str],
) -> _Run:
    products, orders = client[databases["products"]], client[databases["orders"]]
    payments = client[databases["payments"]]
    stock_store, order_store = EventStore(products), EventStore(orders)
    reservation_store = EventStore(products, RESERVATIONS_COLLECTION)
    payment_store, records = EventStore(payments), PaymentStore(payments)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def load(store: EventStore, stream: str) -> tuple[Event, ...]:
        async with gate:
            return tuple(await store.load(stream))

    async def record(order_id: str) -> PaymentRecord | None:
        async with gate:
            return await records.record(order_id)

    wanted = sorted(skus)
    streams = await asyncio.gather(*(load(stock_store, ledger_stream(sku)) for sku in wanted))
    ledgers = dict(zip(wanted, streams, strict=True))
    moved = {e.data["order_id"] for s in streams for e in s if e.data.get("order_id")}
    intents = _reached(requests, "/v1/payment_intents")
    listed = await _listed(OrderStore(orders), skus, since)

    async def case(order_id: str) -> _Case | None:
        order_events = await load(order_store, order_stream(order_id))
        order: Order | None = None
        for event in order_events:
            order = fold_order(order, event)
        if order is not None and order.created_at < since:
            return None  # an earlier run's
        touches = order is not None and any(line["sku"] in skus for line in order.lines)
        if not touches and order_id not in moved:
            return None
        payment_events, reservation_events, found = await asyncio.gather(
            load(payment_store, payment_stream(order_id)),
            load(reservation_store, reservation_stream(order_id)),
            record(order_id),
        )
        payment = Payment(order_id=order_id)
        for event in payment_events:
            payment = fold_payment(payment, event)
        reservation: Reservation | None = None
        for event in reservation_events:
            reservation = fold_reservation(reservation, event)
        return _Case(order_id, order, order_events, payment, payment_events, reservation, found)

    found = await asyncio.gather(*map(case, sorted(moved | intents.keys() | listed)))
    cases = {c.order_id: c for c in found if c is not None}
    return _Run(ledgers, cases, intents, _reached(requests, "/v1/refunds"))


async def _listed(store: OrderStore, skus: set[str], since: datetime) -> set[str]:
    """Orders the projection lists as placed since `since` with a line of `skus`: one indexed
    equality per day. A hint beside the ledger and Stripe's requests; the streams decide."""
    found: set[str] = set()
    day, today = since.astimezone(UTC).date(), clock.now().date()
    while day <= today:
        async for doc in store.orders.find({"day": day.isoformat(), "created_at": {"$gte": since}}):
            if any(line["sku"] in skus for line in doc["state"]["lines"]):
                found.add(str(doc["_id"]))
        day += timedelta(days=1)
    return found


def _reached(
    requests: Sequence[Mapping[str, Any]], path: str
) -> dict[str, list[Mapping[str, str]]]:
    """The creations at `path` stripe-mock received, by the order their metadata names, one per
    Idempotency-Key: Stripe answers a retried key with what its first request made (stripe-mock,
    keeping no state, makes another), so a retry is not a second charge or refund."""
    found: defaultdict[str, dict[str, Mapping[str, str]]] = defaultdict(dict)
    for index, request in enumerate(requests):
        if request["method"] != "POST" or request["path"] != path or not request["forwarded"]:
            continue
        form: Mapping[str, str] = request["form"]
        if order_id := form.get("metadata[order_id]"):
            found[order_id].setdefault(request["idempotency_key"] or f"unkeyed #{index}", form)
    return {order_id: list(by_key.values()) for order_id, by_key in found.items()}


def _verdict(name: str, counts: str, offenders: Sequence[str]) -> Verdict:
    if not offenders:
        return Verdict(name, True, counts)
    more = f" (and {len(offenders) - SHOWN} more)" if len(offenders) > SHOWN else ""
    shown = "; ".join(offenders[:SHOWN])
    return Verdict(name, False, f"{counts}; {len(offenders)} offenders: {shown}{more}")


def _units(run: _Run) -> Verdict:
    sold: Counter[tuple[str, str]] = Counter()
    committed: Counter[tuple[str, str]] = Counter()
    paid = [c for c in run.cases.values() if c.paid and c.order is not None]
    for case in paid:
        assert case.order is not None
        for line in case.order.lines:
            if line["sku"] in run.ledgers:
                sold[case.order_id, line["sku"]] += int(line["quantity"])
    for sku, events in run.ledgers.items():
        for event in events:
            if event.type == Movement.COMMITTED and event.data["order_id"] in run.cases:
                committed[event.data["order_id"], sku] += int(event.data["quantity"])
    offenders = [
        f"{order_id} {sku}: sold {sold[order_id, sku]}, committed {committed[order_id, sku]}"
        for order_id, sku in sorted(sold.keys() | committed.keys())
        if sold[order_id, sku] != committed[order_id, sku]
    ]
    counts = (
        f"{sum(sold.values())} units sold on {len(paid)} paid orders, "
        f"{sum(committed.values())} committed, over {len(run.ledgers)} SKUs"
    )
    return _verdict("units sold equal units committed", counts, offenders)


def _stock(run: _Run) -> Verdict:
    offenders, on_hand, available = [], 0, 0
    for sku, events in sorted(run.ledgers.items()):
        ledger = Ledger()
        lowest_on_hand = lowest_available = 0
        for event in events:
            ledger = fold_stock(ledger, event)
            lowest_on_hand = min(lowest_on_hand, ledger.on_hand)
            lowest_available = min(lowest_available, ledger.available)
        on_hand, available = on_hand + ledger.on_hand, available + ledger.available
        if lowest_on_hand < 0 or lowest_available < 0:
            offenders.append(
                f"{sku} fell to {lowest_on_hand} on hand, {lowest_available} available"
            )
    counts = f"{len(run.ledgers)} SKUs now hold {on_hand} on hand, {available} available"
    return _verdict("no negative stock", counts, offenders)


def _payments(run: _Run) -> Verdict:
    offenders, paid = [], 0
    for case in run.cases.values():
        order = case.order
        if order is None or not case.paid:
            continue
        paid += 1
        wrong = []
        made = run.intents.get(case.order_id, [])
        if len(made) != 1:
            wrong.append(f"{len(made)} PaymentIntents created at Stripe")
        # The SDK sends the amount as a form string, the currency in lower case.
        expected = (str(order.total), order.currency.lower())
        wrong += [
            f"created for {form.get('amount')} {form.get('currency')}"
            for form in made
            if (form.get("amount"), form.get("currency")) != expected
        ]
        payment = case.payment
        successes = sum(e.type == PaymentEvent.SUCCEEDED for e in case.payment_events)
        if successes != 1 or payment.intent is not Intent.SUCCEEDED:
            wrong.append(f"{successes} successes recorded, intent {payment.intent}")
        recorded = (payment.paid_amount, payment.currency, payment.payment_intent_id)
        if recorded != (order.total, order.currency, order.payment_intent_id):
            wrong.append(
                f"paid {payment.paid_amount} {payment.currency} on {payment.payment_intent_id}"
            )
        record = case.record
        if record is None or (record.amount, record.currency) != (order.total, order.currency):
            wrong.append(f"payment record {record}")
        if wrong:
            offenders.append(
                f"{case.order_id} (total {order.total} {order.currency}): " + ", ".join(wrong)
            )
    counts = f"{paid} paid orders; {sum(map(len, run.intents.values()))} PaymentIntent creations"
    return _verdict("every paid order has exactly one successful PaymentIntent", counts, offenders)


def _refunds(run: _Run) -> Verdict:
    offenders, refunds, refunded = [], 0, 0
    for case in run.cases.values():
        limit = case.payment.paid_amount
        recorded = [r for r in case.payment.refunds if r.status is not RefundStatus.FAILED]
        asked = sum(int(form.get("amount", 0)) for form in run.refunds.get(case.order_id, []))
        counted = case.order.refunded if case.order is not None else 0
        total = sum(r.amount for r in recorded)
        refunds, refunded = refunds + len(recorded), refunded + case.payment.refunded_amount
        if max(total, asked, counted) > limit:
            offenders.append(
                f"{case.order_id}: paid {limit}, refunds recorded {total}, "
                f"asked of Stripe {asked}, orders counts {counted}"
            )
    counts = f"{refunds} refunds recorded, {refunded} refunded in all"
    return _verdict("no refund above its payment", counts, offenders)


def _once(run: _Run) -> Verdict:
    offenders, moves = [], 0
    for sku, events in run.ledgers.items():
        holds: Counter[tuple[str, int]] = Counter()
        ends: Counter[tuple[str, int]] = Counter()
        commits: Counter[str] = Counter()
        for event in events:
            order_id: str | None = event.data.get("order_id")
            if order_id is None or order_id not in run.cases:
                continue  # a receipt, an adjustment, or an earlier run's order
            moves += 1
            attempt = (order_id, int(event.data["attempt"]))
            if event.type == Movement.RESERVED:
                holds[attempt] += 1
            elif event.type in LINE_ENDS:
                ends[attempt] += 1
                if event.type == Movement.COMMITTED:
                    commits[order_id] += 1
        offenders += [
            f"{order_id} {sku} attempt {n}: {holds[order_id, n]} holds, {ends[order_id, n]} ends"
            for order_id, n in sorted(holds.keys() | ends.keys())
            if holds[order_id, n] > 1 or ends[order_id, n] > holds[order_id, n]
        ]
        offenders += [f"{o} {sku}: committed {n} times" for o, n in commits.items() if n > 1]
    for case in run.cases.values():
        types = Counter(event.type for event in case.order_events + case.payment_events)
        for kind in (OrderEvent.PAID, PaymentEvent.CREATED, PaymentEvent.SUCCEEDED):
            if types[kind] > 1:
                offenders.append(f"{case.order_id}: {types[kind]} {kind}")
        # A refund is requested once and settled (succeeded or failed) once.
        refunds = Counter(
            (e.data["refund_id"], "requested" if e.type == RefundEvent.REQUESTED else "settled")
            for e in case.payment_events
            if e.type in REFUND_EVENTS
        )
        offenders += [
            f"{case.order_id}: refund {r} {how} {n} times"
            for (r, how), n in refunds.items()
            if n > 1
        ]
        if len(keys := run.intents.get(case.order_id, [])) > 1:
            offenders.append(f"{case.order_id}: {len(keys)} PaymentIntent creations")
    counts = f"{moves} ledger moves and {len(run.cases)} orders' streams"
    return _verdict("every event had its effects once", counts, offenders)


def _expired(run: _Run) -> Verdict:
    cutoff = clock.now() - EXPIRY_GRACE
    offenders, held = [], 0
    for sku, events in run.ledgers.items():
        ledger, expiry = Ledger(), {}
        for event in events:
            ledger = fold_stock(ledger, event)
            if event.type == Movement.RESERVED:
                key = (event.data["order_id"], int(event.data["attempt"]))
                expiry[key] = datetime.fromisoformat(event.data["expires_at"])
        for order_id, hold in ledger.holds.items():
            held += 1
            expires_at = expiry[order_id, hold.attempt]
            if order_id in run.cases and expires_at < cutoff:
                offenders.append(
                    f"{sku} still held for {order_id}, expired {clock.rfc3339(expires_at)}"
                )
    for case in run.cases.values():
        reservation = case.reservation
        if reservation is not None and reservation.state in STILL_OPEN:
            held += 1
            if reservation.expires_at < cutoff:
                offenders.append(
                    f"{case.order_id} still {reservation.state}, "
                    f"expired {clock.rfc3339(reservation.expires_at)}"
                )
    counts = f"{held} reservations and ledger holds still open"
    return _verdict("no reservation left open past its expiry", counts, offenders)
