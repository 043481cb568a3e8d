"""The reconciler: a payment whose webhook was lost is found paid, a refund whose call to Stripe
never ended is finished, and Stripe's recent events are replayed.

stripe-mock answers fixture data (a retrieved PaymentIntent is always `requires_payment_method`,
the event list one `plan.created`), so these tests put a proxy in front of it that answers what
Stripe would after the customer paid: the retrieved PaymentIntent `succeeded`, the event list a
`payment_intent.succeeded`. Everything else reaches stripe-mock as usual.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import orjson
import pytest
from aiohttp import web
from nats.aio.client import Client as NatsClient
from payments_support import Shop, order_id

from payments.events import PaymentEvent
from payments.keys import PAYMENTS
from payments.reconciling import Reconciler
from shopkit import clock
from shopkit.testing.stripe import Fault, StripeProxy

Rewrite = Callable[[dict[str, Any]], dict[str, Any]]


class StripeAfterPayment(StripeProxy):
    """The recording proxy, rewriting the answers of the paths given in `rewrites` (globs)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.rewrites: dict[tuple[str, str], Rewrite] = {}

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        answer = await super()._forward(request, body)
        for (method, path), rewrite in self.rewrites.items():
            if request.method == method and request.path.startswith(path):
                assert answer.body is not None
                changed = rewrite(orjson.loads(answer.body))  # type: ignore[arg-type]
                return web.Response(
                    status=answer.status,
                    body=orjson.dumps(changed),
                    content_type="application/json",
                )
        return answer


@pytest.fixture
async def stripe_proxy(stripe_url: str) -> AsyncIterator[StripeAfterPayment]:
    async with StripeAfterPayment(stripe_url) as proxy:
        yield proxy


def _reconciler(shop: Shop) -> Reconciler:
    return Reconciler(shop.client.app[PAYMENTS], interval=60)


async def test_a_payment_whose_webhook_was_lost_is_found_paid(
    shop: Shop, stripe_proxy: StripeAfterPayment, nats_client: NatsClient
) -> None:
    # given a payment the customer paid, whose webhook never came
    order = order_id()
    intent = (await shop.created(order))["payment_intent_id"]
    stripe_proxy.rewrites[("GET", f"/v1/payment_intents/{intent}")] = lambda pi: {
        **pi,
        "status": "succeeded",
    }

    # when the reconciler runs before it is due, then after RECONCILE_AFTER
    early = await _reconciler(shop).check_due(clock.now())
    assert early == 0
    seen = await _reconciler(shop).check_due(clock.now() + timedelta(seconds=901))

    # then it asked Stripe, found it paid, and published it
    assert seen == 1
    assert stripe_proxy.reached_stripe("GET", f"/v1/payment_intents/{intent}")
    assert (await shop.payment(order))["status"] == "paid"
    [published] = await shop.published(nats_client, PaymentEvent.SUCCEEDED)
    assert published.data["order_id"] == order
    # and a settled payment is not looked at again
    assert await _reconciler(shop).check_due(clock.now() + timedelta(seconds=2000)) == 0


async def test_a_refund_whose_stripe_call_failed_is_finished_under_the_same_key(
    shop: Shop, stripe_proxy: StripeAfterPayment
) -> None:
    # given a paid order, and Stripe failing the refund call (and the SDK's retry)
    order = order_id()
    intent = (await shop.created(order))["payment_intent_id"]
    await shop.intent_event("payment_intent.succeeded", order, intent)
    stripe_proxy.inject(Fault.ERROR, times=2, method="POST", path="/v1/refunds")

    # when orders asks for a refund, then the reconciler runs once it is due
    response = await shop.refund(order, "r1", 1000)
    assert response.status == 201
    assert (await response.json())["status"] == "requested"
    await _reconciler(shop).check_due(clock.now() + timedelta(seconds=901))

    # then the refund succeeded, asked of Stripe under one key each time
    payment = await shop.payment(order)
    assert [(r["refund_id"], r["status"]) for r in payment["refunds"]] == [("r1", "succeeded")]
    attempts = stripe_proxy.requests("POST", "/v1/refunds")
    assert len(attempts) == 3
    assert {a.idempotency_key for a in attempts} == {f"refund:{order}:r1"}


async def test_stripes_recent_events_are_replayed_through_the_webhook_handler(
    shop: Shop, stripe_proxy: StripeAfterPayment
) -> None:
    # given a payment whose succeeded event Stripe lists, but never delivered
    order = order_id()
    intent = (await shop.created(order))["payment_intent_id"]
    event = {
        "id": "evt_listed_1",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {"object": {"id": intent, "object": "payment_intent", "status": "succeeded"}},
    }
    stripe_proxy.rewrites[("GET", "/v1/events")] = lambda page: {
        **page,
        "data": [event],
        "has_more": False,
    }

    # when the reconciler replays Stripe's recent events, twice
    await _reconciler(shop).replay_events(clock.now())
    await _reconciler(shop).replay_events(clock.now())

    # then the payment is paid, and Stripe was asked for the events of the lookback window
    assert (await shop.payment(order))["status"] == "paid"
    [listed, _] = stripe_proxy.reached_stripe("GET", "/v1/events")
    assert int(listed.form["created[gte]"]) <= int(time.time()) - 900
    metrics = await (await shop.client.get("/metrics")).text()
    assert 'outcome="duplicate",type="payment_intent.succeeded"} 1.0' in metrics
