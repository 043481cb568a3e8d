"""A checkout cut short at any step, then the service started again: every order ends paid with
its stock committed, or given up with everything it held released. Nothing lost, nothing doubled.

The crash is an exception no handler catches, raised between two steps of a checkout on one
instance; a fresh instance then serves the client's retry (or nobody retries, and the sweeper
gives the checkout up once its deadline has passed)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from carts_support import Catalog, eventually
from orders_support import Client, Shop

from orders.keys import CHECKOUT, ORDERS
from payments.keys import PAYMENTS

# Each step of a checkout, named by the call that starts it: the crash comes just before it.
STEPS = ("hold_cart", "reserve", "create_payment", "place", "answer")


class Crash(BaseException):
    """The process dies here: nothing after this line runs."""


class CrashingUpstreams:
    """The real upstreams, but the call named `at` never starts."""

    def __init__(self, real: Any, at: str) -> None:
        self._real, self._at = real, at

    def __getattr__(self, name: str) -> Any:
        if name == self._at:
            raise Crash(name)
        return getattr(self._real, name)


def crash_at(client: Client, step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = client.server.app
    checkout, orders = app[CHECKOUT], app[ORDERS]
    if step in ("hold_cart", "reserve", "create_payment"):
        monkeypatch.setattr(checkout, "_up", CrashingUpstreams(checkout._up, step))
    elif step == "place":

        async def crash(*_: Any) -> Any:
            raise Crash(step)

        monkeypatch.setattr(orders, "place", crash)
    else:
        place = orders.place

        async def placed_then_crash(*args: Any) -> Any:
            await place(*args)
            raise Crash(step)

        monkeypatch.setattr(orders, "place", placed_then_crash)


@pytest.mark.parametrize("step", STEPS)
async def test_a_checkout_retried_after_a_crash_is_placed_once_and_paid(
    step: str,
    start_orders: Callable[..., Awaitable[Client]],
    shop: Shop,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a checkout that crashed just before `step`
    sku = "SKU-" + uuid.uuid4().hex[:8].upper()
    await catalog.add({sku: 2500}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 2})
    crash_at(shop.orders, step, monkeypatch)
    with pytest.raises(aiohttp.ClientError):  # the connection drops: the client hears nothing
        await shop.place(customer, key="the-checkout")

    # when the service is started again and the client retries
    shop.orders = await start_orders()
    monkeypatch.undo()
    retried = await shop.place(customer, key="the-checkout")

    # then the order is placed once, with one PaymentIntent, and paying it commits its stock
    assert retried.status == 201, await retried.text()
    order = await retried.json()
    assert len(shop.stripe.requests("POST", "/v1/payment_intents")) <= 2
    assert (
        len({r.idempotency_key for r in shop.stripe.requests("POST", "/v1/payment_intents")}) == 1
    )
    await shop.pay(order)
    await shop.settled(sku, on_hand=3)
    assert len(await shop.published("orders", "order.paid", order["id"])) == 1


@pytest.mark.parametrize("step", STEPS)
async def test_a_checkout_abandoned_after_a_crash_releases_everything_it_held(
    step: str,
    start_orders: Callable[..., Awaitable[Client]],
    shop: Shop,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a checkout that crashed just before `step`, on an instance giving up checkouts
    # after three seconds and expiring orders after four
    shop.orders = await start_orders(CHECKOUT_DEADLINE="3", PAYMENT_WINDOW="4")
    sku = "SKU-" + uuid.uuid4().hex[:8].upper()
    await catalog.add({sku: 2500}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 2})
    crash_at(shop.orders, step, monkeypatch)
    with pytest.raises(aiohttp.ClientError):
        await shop.place(customer, key="the-checkout")
    monkeypatch.undo()

    # when nobody retries, and a fresh instance runs
    shop.orders = await start_orders(CHECKOUT_DEADLINE="3", PAYMENT_WINDOW="4")

    # then the stock is available again, the cart is free, and any PaymentIntent is cancelled
    await shop.settled(sku, on_hand=5)

    async def cart_free() -> bool:
        return (await shop.cart(customer))["checkout"] is None

    await eventually(cart_free, timeout=15)
    if shop.stripe.requests("POST", "/v1/payment_intents"):

        async def cancelled() -> bool:
            return bool(shop.stripe.requests("POST", "/v1/payment_intents/*/cancel"))

        await eventually(cancelled, timeout=15)
    # and the customer can check out again
    again = await shop.place(customer)
    assert again.status == 201, await again.text()


async def test_a_retry_after_the_cart_changed_places_what_the_first_attempt_priced(
    start_orders: Callable[..., Awaitable[Client]],
    shop: Shop,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a checkout of 2 units that crashed once priced, before its PaymentIntent was made
    sku = "SKU-" + uuid.uuid4().hex[:8].upper()
    await catalog.add({sku: 2500}, stock=10)
    customer = await shop.fill(shop.customer(), {sku: 2})
    crash_at(shop.orders, "create_payment", monkeypatch)
    with pytest.raises(aiohttp.ClientError):
        await shop.place(customer, key="the-checkout")
    monkeypatch.undo()

    # when the customer adds a unit, and the client retries the same request
    await shop.fill(customer, {sku: 1})
    shop.orders = await start_orders()
    retried = await shop.place(customer, key="the-checkout")

    # then the order is the one first priced: 2 units, reserved once, charged for 2
    assert retried.status == 201, await retried.text()
    order = await retried.json()
    assert order["lines"][0]["quantity"] == 2
    assert order["total"]["amount"] == 5000
    assert (await shop.level(sku))["reserved"] == 2


# Each step of payments' part: its PaymentIntent made and recorded, then Stripe's webhook
# recorded. The crash comes just before the call named (or, `after:`, just after it).
PAYMENT_STEPS = (
    "create_intent",
    "name_intent",
    "after:keep_secret",
    "after:decide",
    "after:webhook-acted",
)


def crash_payments_at(client: Client, step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    payments = client.server.app[PAYMENTS]
    owners = {
        "create_intent": payments.stripe,
        "name_intent": payments.store,
        "keep_secret": payments.store,
        "decide": payments,
        "webhook-acted": payments.store,
    }
    after = step.startswith("after:")
    name = step.removeprefix("after:")
    if name == "webhook-acted":
        # The webhook's event acted on, and the process dies before its id is recorded.
        owner, name = payments.store, "mark_handled"
        after = False
    else:
        owner = owners[name]
    real = getattr(owner, name)

    async def crash(*args: Any, **kwargs: Any) -> Any:
        if after:
            await real(*args, **kwargs)
        raise Crash(step)

    monkeypatch.setattr(owner, name, crash)


@pytest.mark.parametrize("step", PAYMENT_STEPS)
async def test_a_checkout_through_a_payments_crash_ends_paid_once_or_released(
    step: str,
    start_orders: Callable[..., Awaitable[Client]],
    shop: Shop,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given payments dying at `step` once
    sku = "SKU-" + uuid.uuid4().hex[:8].upper()
    await catalog.add({sku: 2500}, stock=5)
    customer = await shop.fill(shop.customer(), {sku: 2})
    crash_payments_at(shop.payments, step, monkeypatch)
    first = await shop.place(customer, key="the-checkout")
    if step != "after:webhook-acted":
        # (orders' own retry of the call may already find what the dead attempt recorded)
        assert first.status in (201, 409, 502, 503, 504), await first.text()
        monkeypatch.undo()  # payments runs again
        # when the client retries
        retried = await shop.place(customer, key="the-checkout")
        assert retried.status == 201, await retried.text()
        order = await retried.json()
        await shop.confirm(order["payment"]["payment_intent_id"])
        webhook = await shop.webhook("payment_intent.succeeded", order)
        assert webhook.status == 200
    else:
        order = await first.json()
        # when Stripe's webhook reaches payments as it dies, then Stripe delivers it again
        event_id = "evt_" + uuid.uuid4().hex[:20]
        with pytest.raises(aiohttp.ClientError):
            await shop.webhook("payment_intent.succeeded", order, event_id=event_id)
        monkeypatch.undo()
        again = await shop.webhook("payment_intent.succeeded", order, event_id=event_id)
        assert again.status == 200, await again.text()

    # then the order is paid once, its stock committed once, and one PaymentIntent was kept
    await shop.until(order["id"], payment_status="paid")
    await shop.settled(sku, on_hand=3)
    assert len(await shop.published("orders", "order.paid", order["id"])) == 1
    assert len(await shop.published("payments", "payment.succeeded", order["id"])) == 1
    keys = {r.idempotency_key for r in shop.stripe.requests("POST", "/v1/payment_intents")}
    assert keys == {f"order:{order['id']}:create"}
