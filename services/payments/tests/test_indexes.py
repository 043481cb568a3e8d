"""Every query the payments service makes is served by an index, read from PostgreSQL's own plans."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from nats.aio.client import Client as NatsClient
from payments_support import Shop, eventually, order_id

from payments.events import OrderEvent
from payments.keys import PAYMENTS
from payments.reconciling import Reconciler
from shopkit import clock
from shopkit.testing.explain import KIT_READ_WHOLE, ExplainedMongo

READ_WHOLE = KIT_READ_WHOLE


async def test_every_query_of_a_payment_journey_is_served_by_an_index(
    start_payments: Callable[..., Awaitable[Shop]],
    explained_mongo: ExplainedMongo,
    database_name: str,
    nats_client: NatsClient,
) -> None:
    shop = await start_payments(MONGO_URL=explained_mongo.url)
    # A payment is created twice, paid, refunded in part (twice), disputed, read by staff.
    paid = order_id()
    intent = (await shop.created(paid))["payment_intent_id"]
    await shop.created(paid)
    await shop.intent_event("payment_intent.succeeded", paid, intent)
    await shop.intent_event("payment_intent.succeeded", paid, intent, event_id="evt_x")
    await shop.intent_event("payment_intent.succeeded", paid, intent, event_id="evt_x")
    assert (await shop.refund(paid, "r1", 500)).status == 201
    assert (await shop.refund(paid, "r1", 500)).status == 200
    refund = {"id": "re_1", "object": "refund", "status": "succeeded", "amount": 100}
    await shop.webhook("refund.updated", {**refund, "payment_intent": intent})
    await shop.webhook(
        "charge.dispute.created",
        {
            "id": "dp_1",
            "object": "dispute",
            "amount": 2599,
            "currency": "eur",
            "payment_intent": intent,
        },
    )
    staff = await shop.client.get(
        f"/api/v1/payments/{paid}", headers=shop.tokens.header("s", "staff")
    )
    assert staff.status == 200
    # Another is cancelled by its order's end; a third is left to the reconciler.
    ended, stuck = order_id(), order_id()
    await shop.created(ended)
    await shop.created(stuck)
    await shop.order_ended(nats_client, OrderEvent.CANCELLED, ended)

    async def cancelled() -> bool:
        return (await shop.payment(ended))["status"] == "cancelled"

    await eventually(cancelled)
    reconciler = Reconciler(shop.client.app[PAYMENTS], interval=60)
    await reconciler.check_due(clock.now() + timedelta(seconds=901))
    await reconciler.replay_events(clock.now())
    await shop.client.app[PAYMENTS].store.purge_handled(clock.now())

    scans = explained_mongo.unexpected(database_name, READ_WHOLE)
    assert scans == [], "\n".join(map(str, scans))
