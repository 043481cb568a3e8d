"""Shoppers as Locust users, one class per scenario, on the data `load.py` seeds (SHOP_LOAD_DATA).

Locust picks the classes by name (`Shopper`, `FlashBuyer`, `DoubleSubmitter`, `WebhookStorm`). An
answer the shop gives by design (409 sold out, 409 in progress, the guest quota's 429) counts as a
success under a name of its own (`POST /api/v1/orders [sold out]`); anything else unexpected, and
every 5xx, is a failure.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from locust import FastHttpUser, between, constant, events, task

from carts.errors import CartNotFound
from carts.errors import InsufficientStock as ShortAtTheCart
from orders.errors import (
    CartNotReady,
    CheckoutAbandoned,
    CheckoutInProgress,
    InsufficientStock,
    PaymentNotRefundable,
    RefundTooLarge,
    TransitionNotAllowed,
)
from shopkit.idempotency import RequestInFlight
from shopkit.problems import TooManyRequests
from shopkit.testing.stripe import order_intent_event, sign_webhook

DATA: dict[str, Any] = json.loads(Path(os.environ["SHOP_LOAD_DATA"]).read_text())
# Every Locust user signs in as an account of its own, handed out in turn.
ACCOUNTS = iter(DATA["accounts"])
# Flash buyers who have had their go: the sale is over when every one has.
FINISHED = itertools.count(1)
SALE_OVER = Event()
ADDRESS = {
    "recipient": "Load Shopper",
    "line1": "Hauptstrasse 1",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}
CART = "/api/v1/carts/current"
ORDERS = "/api/v1/orders"
WEBHOOK = "/api/v1/payments/webhooks/stripe"
# Orders of one cart follow each other: carts takes the lines out just after the order is placed.
CHECKOUT_RETRIES = 40
# How long a shopper keeps retrying a checkout the server failed (a spinning button), and how
# often an add.
CHECKOUT_PATIENCE = 120.0
ADD_RETRIES = 10
RETRY_PAUSE = 0.1
SOLD_OUT = {InsufficientStock.slug, CartNotReady.slug}
IN_PROGRESS = {CheckoutInProgress.slug, RequestInFlight.slug, "cart-held"}
# A refund asked before the payment's webhook has reached the order and payments.
NOT_YET = {TransitionNotAllowed.slug, PaymentNotRefundable.slug, *IN_PROGRESS}


def problem(response: Any) -> str:
    """The slug of a problem+json answer (`insufficient-stock`), or '' for anything else."""
    try:
        return str(response.json().get("type", "")).rsplit("/", 1)[-1]
    except (ValueError, AttributeError, TypeError):  # no body, or not JSON
        return ""


def server_failed(response: Any) -> bool:
    """The server's failure, not a refusal: a 5xx, or no answer at all (status 0)."""
    return bool(response.status_code == 0 or response.status_code >= 500)


def write_figures(environment: Any, **_: Any) -> None:
    """The final figures per endpoint, once every user has stopped, into SHOP_LOAD_FIGURES (the
    CSV Locust writes is a periodic snapshot: requests in flight at the end would be missing)."""
    path = os.environ.get("SHOP_LOAD_FIGURES")
    if not path:
        return
    stats = environment.stats
    entries = sorted(stats.entries.values(), key=lambda entry: entry.name)
    runner = environment.runner
    rows = [
        {
            "name": name,
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            "rps": entry.total_rps,
            **{f"p{p}": entry.get_response_time_percentile(p / 100) for p in (50, 95, 99)},
        }
        for name, entry in [*((e.name, e) for e in entries), ("Aggregated", stats.total)]
    ]
    # Errors that are no failed request (an exception in a task) fail a strict run too.
    errors = [str(error["msg"]) for error in (runner.exceptions.values() if runner else [])]
    Path(path).write_text(json.dumps({"rows": rows, "errors": errors}))


events.quitting.add_listener(write_figures)  # type: ignore[no-untyped-call]


class ShopUser(FastHttpUser):
    """What every shopper does: sign in, fill the cart, place an order, pay for it."""

    abstract = True
    # A browser's connections: each user is one shopper.
    concurrency = 2
    # The share of these users who sign in as they start (the others shop as guests at first).
    signed_in_share = 0.0

    def on_start(self) -> None:
        self.headers: dict[str, str] = {}
        self.account: dict[str, str] = next(ACCOUNTS)
        if random.random() < self.signed_in_share:
            self.sign_in()

    def sign_in(self) -> None:
        if "token" in self.account:  # signed in before the run (a sale's crowd waits signed in)
            self.headers = {"Authorization": f"Bearer {self.account['token']}"}
            return
        credentials = {"email": self.account["email"], "password": self.account["password"]}
        with self.client.post(
            "/api/v1/auth/login",
            json=credentials,
            name="POST /api/v1/auth/login",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"login {response.status_code}: {(response.text or '')[:200]}")
                return
            token = response.json()["access_token"]
        token_of_guest = self.headers.get("X-Cart-Token")
        self.headers = {"Authorization": f"Bearer {token}"}
        if token_of_guest:
            # The guest cart joins the account's, as a shop's sign-in does (unless it is gone).
            with self.client.post(
                f"{CART}/merge",
                headers={**self.headers, "X-Cart-Token": token_of_guest},
                name=f"POST {CART}/merge",
                catch_response=True,
            ) as response:
                if response.status_code == 404 and problem(response) == CartNotFound.slug:
                    response.request_meta["name"] = f"POST {CART}/merge [cart gone]"
                    response.success()

    def add(self, sku: str, quantity: int = 1) -> bool:
        """Add to the cart (sent again after a server-side failure, as a shopper would); False
        when the shop refuses it as sold out."""
        for _ in range(ADD_RETRIES):
            added = self._add(sku, quantity)
            if added is not None:
                return added
            gevent.sleep(RETRY_PAUSE * 5)
        return False

    def _add(self, sku: str, quantity: int) -> bool | None:
        """One add: None when the server failed it (5xx, or no answer at all)."""
        with self.client.post(
            f"{CART}/lines",
            json={"sku": sku, "quantity": quantity},
            headers=self.headers,
            name=f"POST {CART}/lines",
            catch_response=True,
        ) as response:
            if response.status_code in (200, 201):
                if token := response.headers.get("X-Cart-Token"):
                    self.headers["X-Cart-Token"] = token
                return True
            if response.status_code == 409 and problem(response) == ShortAtTheCart.slug:
                response.request_meta["name"] = f"POST {CART}/lines [sold out]"
                response.success()
                return False
            if response.status_code == 429 and problem(response) == TooManyRequests.slug:
                # One address opening carts faster than GUEST_CARTS_PER_MINUTE: every simulated
                # guest shares 127.0.0.1, and the quota is per address, by design.
                response.request_meta["name"] = f"POST {CART}/lines [guest quota]"
                response.success()
                return False
            if response.status_code == 404 and problem(response) == CartNotFound.slug:
                # A guest cart emptied by its order is gone: the next add starts a new one.
                self.headers.pop("X-Cart-Token", None)
                response.request_meta["name"] = f"POST {CART}/lines [cart gone]"
                response.success()
                return False
            response.failure(f"{response.status_code}: {(response.text or '')[:200]}")
            return None if server_failed(response) else False

    def place(self, key: str | None = None) -> dict[str, Any] | None:
        """Place the cart's order with one Idempotency-Key (retried while the previous order is
        still leaving the cart); None when it is sold out or refused."""
        key = key or uuid.uuid4().hex
        body: dict[str, Any] = {"shipping_method": "standard", "shipping_address": ADDRESS}
        if "Authorization" not in self.headers:
            body["email"] = f"guest-{uuid.uuid4().hex[:12]}@example.com"
        patience = time.monotonic() + CHECKOUT_PATIENCE
        while time.monotonic() < patience:
            with self.client.post(
                ORDERS,
                json=body,
                headers={**self.headers, "Idempotency-Key": key},
                name=f"POST {ORDERS}",
                catch_response=True,
            ) as response:
                if response.status_code in (200, 201):
                    order: dict[str, Any] = response.json()
                    return order
                slug = problem(response)
                if response.status_code == 409 and slug in SOLD_OUT:
                    response.request_meta["name"] = f"POST {ORDERS} [sold out]"
                    response.success()
                    return None
                if response.status_code == 409 and slug in IN_PROGRESS:
                    response.request_meta["name"] = f"POST {ORDERS} [in progress]"
                    response.success()
                    gevent.sleep(RETRY_PAUSE)
                    continue
                if response.status_code == 409 and slug == CheckoutAbandoned.slug:
                    # The shop gave this checkout up (its steps kept failing): a new one, as
                    # the answer asks.
                    response.request_meta["name"] = f"POST {ORDERS} [given up]"
                    response.success()
                    key = uuid.uuid4().hex
                    continue
                response.failure(f"{response.status_code}: {(response.text or '')[:200]}")
                if not server_failed(response):
                    return None
                # The server failed it: a client retries under the same key (the same checkout).
                gevent.sleep(RETRY_PAUSE * 5)
        return None

    def deliver(self, order: dict[str, Any], event_type: str, event_id: str | None = None) -> None:
        """Stripe's webhook about the order's PaymentIntent, signed as Stripe signs it."""
        body = order_intent_event(event_type, order, event_id=event_id)
        with self.client.post(
            WEBHOOK,
            data=body.decode(),
            headers={
                "Stripe-Signature": sign_webhook(body, DATA["webhook_secret"]),
                "Content-Type": "application/json",
            },
            name=f"POST {WEBHOOK}",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {(response.text or '')[:200]}")

    def pay(self, order: dict[str, Any]) -> None:
        self.deliver(order, "payment_intent.succeeded")


class Shopper(ShopUser):
    """Steady trade: mostly browsing and searching, some carts, a few checkouts; half of the
    shoppers sign in (at once or before checking out), half stay guests."""

    wait_time = between(0.5, 2.0)
    signed_in_share = 0.5

    @task(10)
    def browse_category(self) -> None:
        category = random.choice(DATA["categories"])
        # A catalog without categories (a fresh test shop) is browsed whole.
        query = f"category={category}&" if category else ""
        self.client.get(f"/api/v1/products?{query}limit=24", name="GET /api/v1/products?category")

    @task(8)
    def view_product(self) -> None:
        product = random.choice(DATA["products"])
        self.client.get(f"/api/v1/products/{product}", name="GET /api/v1/products/{key}")

    @task(5)
    def search(self) -> None:
        word = random.choice(DATA["search_words"])
        self.client.get(f"/api/v1/search?q={word}", name="GET /api/v1/search")

    @task(3)
    def add_to_cart(self) -> None:
        self.add(random.choice(DATA["skus"]))

    @task(3)
    def view_cart(self) -> None:
        with self.client.get(
            CART, headers=self.headers, name=f"GET {CART}", catch_response=True
        ) as response:
            if response.status_code == 404 and problem(response) == CartNotFound.slug:
                # A guest's cart emptied by its order is gone, as is one never started.
                self.headers.pop("X-Cart-Token", None)
                response.request_meta["name"] = f"GET {CART} [no cart]"
                response.success()

    @task(1)
    def check_out(self) -> None:
        if random.random() < 0.5 and "Authorization" not in self.headers:
            self.sign_in()
        if not self.add(random.choice(DATA["skus"])):
            return
        order = self.place()
        if order is not None:
            self.pay(order)


class FlashBuyer(ShopUser):
    """The flash sale: a signed-in buyer wants one unit of the scarce SKU, checks out at once and
    pays, or is told it is sold out; then waits for the sale to end, which it does when every
    buyer has had their go. (A user that stopped would be spawned again, as a second buyer.)"""

    wait_time = constant(0)

    def on_start(self) -> None:
        super().on_start()
        self.done = False

    @task
    def buy(self) -> None:
        if self.done:
            SALE_OVER.wait()
            return
        self.done = True
        self.sign_in()
        if self.add(DATA["flash_sku"]):
            order = self.place()
            if order is not None:
                self.pay(order)
        runner = self.environment.runner
        if runner is not None and next(FINISHED) >= len(DATA["accounts"]):
            SALE_OVER.set()
            gevent.spawn(runner.quit)  # not from this greenlet, which quit() stops


class DoubleSubmitter(ShopUser):
    """The impatient buyer: one checkout sent five times at once with one Idempotency-Key (a
    double-clicked button, a flaky network): every answer must name one order."""

    wait_time = between(0.2, 1.0)
    concurrency = 6  # the five submits at once, truly in parallel
    signed_in_share = 1.0

    @task
    def submit_many(self) -> None:
        if not self.add(random.choice(DATA["skus"])):
            return
        key = uuid.uuid4().hex
        placed = [gevent.spawn(self.place, key) for _ in range(5)]
        gevent.joinall(placed)
        orders = {g.value["id"] for g in placed if g.value is not None}
        if len(orders) > 1:
            events.request.fire(  # type: ignore[no-untyped-call]
                request_type="CHECK",
                name="one order per Idempotency-Key",
                response_time=0,
                response_length=0,
                exception=AssertionError(f"one key made {len(orders)} orders: {sorted(orders)}"),
            )
        order = next((g.value for g in placed if g.value is not None), None)
        if order is not None:
            self.pay(order)


class WebhookStorm(ShopUser):
    """Stripe retrying and reordering: each order's events arrive duplicated and out of order
    (succeeded twice under one event id and once under another, processing after succeeded);
    then staff refund half of some orders, the request sent twice at once under one key, and
    try to refund all of it on top (refused: more than what is left)."""

    wait_time = between(0.2, 1.0)
    concurrency = 5  # the four deliveries at once
    signed_in_share = 1.0

    @task
    def storm(self) -> None:
        if not self.add(random.choice(DATA["skus"])):
            return
        order = self.place()
        if order is None:
            return
        succeeded = "evt_" + uuid.uuid4().hex[:24]
        deliveries = [
            ("payment_intent.succeeded", succeeded),
            ("payment_intent.processing", None),
            ("payment_intent.succeeded", succeeded),
            ("payment_intent.succeeded", None),
        ]
        random.shuffle(deliveries)
        gevent.joinall([gevent.spawn(self.deliver, order, kind, eid) for kind, eid in deliveries])
        if random.random() < 0.3:
            self.refund(order)

    def refund(self, order: dict[str, Any]) -> None:
        half = order["total"]["amount"] // 2
        key = uuid.uuid4().hex
        refunds = [gevent.spawn(self.ask_refund, order, half, key) for _ in range(2)]
        gevent.joinall(refunds)
        if any(refund.value for refund in refunds):
            self.ask_refund(order, order["total"]["amount"], uuid.uuid4().hex)

    def ask_refund(self, order: dict[str, Any], amount: int, key: str) -> bool:
        """Staff asks for a refund of `amount` under `key`; True when it was taken. Until the
        order's payment has landed (the webhook's effect is a moment behind), it is refused."""
        staff = {"Authorization": f"Bearer {DATA['staff_token']}", "Idempotency-Key": key}
        for _ in range(CHECKOUT_RETRIES):
            with self.client.post(
                f"{ORDERS}/{order['id']}/refunds",
                json={"amount": amount, "reason": "load test"},
                headers=staff,
                name=f"POST {ORDERS}/{{id}}/refunds",
                catch_response=True,
            ) as response:
                slug = problem(response)
                if response.status_code in (200, 201, 202):
                    return True
                if response.status_code == 409 and slug == RefundTooLarge.slug:
                    response.request_meta["name"] = f"POST {ORDERS}/{{id}}/refunds [too large]"
                    response.success()
                    return False
                if response.status_code == 409 and slug in {
                    TransitionNotAllowed.slug,
                    *IN_PROGRESS,
                }:
                    response.request_meta["name"] = f"POST {ORDERS}/{{id}}/refunds [not yet]"
                    response.success()
                    gevent.sleep(RETRY_PAUSE * 3)
                    continue
                response.failure(f"{response.status_code}: {(response.text or '')[:200]}")
                return False
        return False
