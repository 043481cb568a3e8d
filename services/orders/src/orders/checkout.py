"""Placing an order: from the caller's cart to a pending order with its PaymentIntent.

The order id comes from the request's Idempotency-Key, and every step is keyed by it, so a retry
(or a takeover after a crash) repeats each step harmlessly: the order is listed for the sweeper
before anything else happens; the cart is held for it (its lines priced live, and no other order
may take the cart meanwhile); stock is reserved; the PaymentIntent is made; then `order.placed`
is appended in the stream's first slot, the commit. A checkout that stops before that (a crash,
an upstream down) is given up by the sweeper, which appends `order.cancelled` in that same slot:
the insert decides between the two, and everything held for the order is released by the event.
A refusal (short stock, a total too small) undoes what was held at once.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orders.clients import CartHeldByOther, Upstreams
from orders.errors import (
    AboveMaximumCharge,
    BelowMinimumCharge,
    CartEmpty,
    CartNotReady,
    CartRequired,
    CheckoutAbandoned,
    CheckoutInProgress,
    GuestDetailsMissing,
    InsufficientStock,
)
from orders.metrics import OrderMetrics
from orders.model import ENDED, Order, OrderStatus
from orders.orders import Orders
from orders.rates import Rates
from shopkit import clock
from shopkit.headers import AUTHORIZATION, CART_TOKEN, RETRY_AFTER
from shopkit.money import MINIMUM_CHARGE, Money
from shopkit.problems import Problem


@dataclass(frozen=True, slots=True)
class Caller:
    """Who places the order: a signed-in user, or a guest known by their cart token."""

    user_id: str | None
    credentials: dict[str, str]  # forwarded to carts and users, to act as the caller

    @property
    def guest_key(self) -> str | None:
        token = self.credentials.get(CART_TOKEN)
        return guest_key(token) if self.user_id is None and token else None

    @classmethod
    def of(cls, user_id: str | None, headers: Mapping[str, str]) -> Caller:
        """From the request's headers (a case-insensitive mapping: clients send any case)."""
        if user_id is not None:
            return cls(user_id, {AUTHORIZATION: headers.get(AUTHORIZATION, "")})
        token = headers.get(CART_TOKEN)
        if not token:
            raise CartRequired("sign in, or send your guest cart's X-Cart-Token")
        return cls(None, {CART_TOKEN: token})

    def owns(self, order: Order) -> bool:
        if self.user_id is not None:
            return order.user_id == self.user_id
        return order.guest_key is not None and order.guest_key == self.guest_key


@dataclass(frozen=True, slots=True)
class OrderRequest:
    shipping_method: str
    shipping_address: dict[str, Any] | None = None
    address_id: str | None = None
    email: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Timing:
    payment_window: timedelta  # a pending order expires after it
    deadline: timedelta  # a checkout not placed by then is given up
    reservation_grace: timedelta  # the stock stays reserved this long past the window


@dataclass(frozen=True, slots=True)
class Placed:
    order: Order
    client_secret: str | None
    made: bool  # False: an order placed before (a retry, or the cart's pending order)


def guest_key(cart_token: str) -> str:
    return hashlib.sha256(cart_token.encode()).hexdigest()


def order_number(order_id: str) -> str:
    """A readable number, derived from the id: `SO-` and ten characters of base32 (no 0/1/8/9
    to misread), 50 bits."""
    code = base64.b32encode(hashlib.sha256(order_id.encode()).digest()).decode()[:10]
    return f"SO-{code[:5]}-{code[5:]}"


# Stripe's largest single charge: eight digits of minor units, in every currency.
MAXIMUM_CHARGE = 99_999_999


class Checkout:
    def __init__(
        self,
        orders: Orders,
        upstreams: Upstreams,
        rates: Rates,
        timing: Timing,
        metrics: OrderMetrics | None = None,
    ) -> None:
        self._orders = orders
        self._up = upstreams
        self._rates = rates
        self._timing = timing
        self._metrics = metrics

    async def place(self, caller: Caller, request: OrderRequest, order_id: str) -> Placed:
        existing = await self._orders.get(order_id)
        if existing is not None:
            # This very request placed it before (its answer was lost): answer as it would have.
            return await self._answer(existing, made=True)
        if await self._orders.first_event(order_id) is not None:
            raise CheckoutAbandoned(
                "this checkout was given up before it finished; place the order again with a new "
                "Idempotency-Key"
            )
        cart = await self._up.current_cart(caller.credentials)
        cart_id = str(cart["id"])
        address = await self._address(caller, request)
        # Refused before anything is held: a method that does not ship there in this currency.
        self._rates.method(request.shipping_method, address["country"], str(cart["currency"]))

        await self._orders.store.track(order_id, cart_id, clock.now() + self._timing.deadline)
        try:
            held = await self._hold(caller, cart_id, order_id)
        except (CartEmpty, CartNotReady, CheckoutInProgress):
            # carts refused to hold it: unless an earlier attempt got further (it kept a draft),
            # nothing is held for this order. Any other failure (an upstream down, an answer
            # lost) leaves the watch: the sweeper gives the checkout up and releases it all.
            if await self._orders.store.draft_of(order_id) is None:
                await self._orders.store.untrack(order_id)
            raise
        if isinstance(held, Placed):
            return held
        try:
            draft = await self._draft(caller, request, order_id, held, address)
        except Problem:
            await self._undo(order_id, cart_id, stock=False)
            raise
        lines = draft["lines"]
        window = self._timing.payment_window
        try:
            hold_stock_for = window + self._timing.reservation_grace
            await self._up.reserve(order_id, lines, int(hold_stock_for.total_seconds()))
        except (InsufficientStock, CheckoutAbandoned):
            await self._undo(order_id, cart_id, stock=False)
            raise
        try:
            payment = await self._up.create_payment(
                order_id, draft["total"], draft["currency"], draft["email"]
            )
        except (BelowMinimumCharge, CheckoutAbandoned):
            await self._undo(order_id, cart_id, stock=True)
            raise
        created_at = datetime.fromisoformat(draft["created_at"])
        order = Order(
            id=order_id,
            number=order_number(order_id),
            cart_id=cart_id,
            user_id=caller.user_id,
            guest_key=caller.guest_key,
            email=draft["email"],
            currency=draft["currency"],
            lines=tuple(lines),
            shipping=draft["shipping"],
            subtotal=draft["subtotal"],
            shipping_total=draft["shipping"]["amount"],
            tax_total=draft["tax_total"],
            total=draft["total"],
            tax_inclusive=draft["tax_inclusive"],
            note=request.note,
            payment_intent_id=str(payment["payment_intent_id"]),
            created_at=created_at,
            expires_at=created_at + window,
        )
        placed = await self._orders.place(order)
        if placed is None:
            # The sweeper gave it up while this attempt ran late: what this attempt held after
            # the cancellation's consumers let go is given back here.
            await self._undo(order_id, cart_id, stock=True)
            raise CheckoutAbandoned(
                "this checkout took too long and was given up; place the order again"
            )
        if self._metrics is not None:
            self._metrics.order_placed(placed)
        return Placed(placed, payment.get("client_secret"), made=True)

    async def _draft(
        self,
        caller: Caller,
        request: OrderRequest,
        order_id: str,
        held: dict[str, Any],
        address: dict[str, Any],
    ) -> dict[str, Any]:
        """The order's lines, amounts and email, priced from the held cart, kept at its first
        attempt: a retry reserves and charges exactly what the first attempt priced, whatever
        the cart or its prices did since."""
        kept = await self._orders.store.draft_of(order_id)
        if kept is not None:
            return kept
        currency = str(held["currency"])
        email = request.email or held.get("email") or await self._email(caller)
        if not email:
            raise GuestDetailsMissing(
                "a guest order needs an email", errors={"email": ["required for a guest"]}
            )
        method = self._rates.method(request.shipping_method, address["country"], currency)
        priced = price(held, self._rates, method.id, address, currency)
        minimum = MINIMUM_CHARGE.get(currency, 0)
        if priced["total"] < minimum:
            raise BelowMinimumCharge(
                f"the total, {priced['total']} {currency} in minor units, is below the smallest "
                f"charge possible ({minimum})",
                minimum=Money(minimum, currency).to_json(),
            )
        if priced["total"] > MAXIMUM_CHARGE:
            raise AboveMaximumCharge(
                f"the total, {priced['total']} {currency} in minor units, is above the largest "
                f"single charge ({MAXIMUM_CHARGE})"
            )
        draft = {
            **priced,
            "currency": currency,
            "email": email,
            "created_at": clock.rfc3339(clock.now()),
        }
        return await self._orders.store.keep_draft(order_id, draft)

    async def _hold(self, caller: Caller, cart_id: str, order_id: str) -> dict[str, Any] | Placed:
        """Hold the cart for the order; when another order holds it, that order if it is the
        caller's and still pending (one pending order per cart)."""
        for _ in range(2):
            try:
                return await self._up.hold_cart(cart_id, order_id)
            except CartHeldByOther as held:
                other = await self._orders.get(held.order_id)
                if other is not None and other.status is OrderStatus.PENDING and caller.owns(other):
                    await self._orders.store.untrack(order_id)
                    return await self._answer(other, made=False)
                ended = other is not None and other.status in ENDED
                given_up = other is None and await self._orders.first_event(held.order_id)
                if not (ended or given_up):
                    # Being placed right now, or paid and about to leave the cart: wait for it.
                    raise CheckoutInProgress(
                        "another checkout of this cart is under way; retry in a moment",
                        headers={RETRY_AFTER: "1"},
                    ) from None
                # It ended (or was given up) and carts has not heard yet: end its hold now.
                await self._up.release_cart(cart_id, held.order_id)
        raise CheckoutInProgress("the cart keeps changing hands; retry", headers={RETRY_AFTER: "1"})

    async def _undo(self, order_id: str, cart_id: str, *, stock: bool) -> None:
        """Give back what a refused checkout held; once all is given back, the sweeper has
        nothing left to do for it (a retry lists it again first)."""
        if stock:
            await self._up.release_stock(order_id, "checkout refused")
        await self._up.release_cart(cart_id, order_id)
        await self._orders.store.untrack(order_id)

    async def _answer(self, order: Order, *, made: bool) -> Placed:
        secret = None
        if order.status is OrderStatus.PENDING:
            payment = await self._up.payment(order.id)
            secret = payment.get("client_secret") if payment is not None else None
        return Placed(order, secret, made)

    async def _address(self, caller: Caller, request: OrderRequest) -> dict[str, Any]:
        if request.shipping_address is not None:
            return request.shipping_address
        if request.address_id is not None and caller.user_id is not None:
            return await self._up.saved_address(request.address_id, caller.credentials)
        raise GuestDetailsMissing(
            "give a shipping_address (or, signed in, the address_id of a saved one)",
            errors={"shipping_address": ["required"]},
        )

    async def _email(self, caller: Caller) -> str | None:
        if caller.user_id is None:
            return None
        return await self._up.email_of_caller(caller.credentials)


def price(
    cart: dict[str, Any], rates: Rates, method_id: str, address: dict[str, Any], currency: str
) -> dict[str, Any]:
    """The order's lines, shipping, tax and total from the held cart's live prices. Nothing a
    client sent is a price: the cart's lines were priced by products just now."""
    country = str(address["country"])
    tax = rates.tax(country)
    lines = []
    for line in cart["lines"]:
        unit = int(line["unit_price"]["amount"])
        total = unit * int(line["quantity"])
        lines.append(
            {
                "sku": line["sku"],
                "title": line["title"],
                "quantity": int(line["quantity"]),
                "unit_price": unit,
                "total": total,
                "tax": tax.of(total),
            }
        )
    subtotal = sum(line["total"] for line in lines)
    method = rates.method(method_id, country, currency)
    shipping_amount = method.cost(currency, subtotal)
    shipping_tax = tax.of(shipping_amount)
    tax_total = sum(line["tax"] for line in lines) + shipping_tax
    total = subtotal + shipping_amount + (0 if tax.inclusive else tax_total)
    return {
        "lines": lines,
        "subtotal": subtotal,
        "shipping": {
            "method": method.id,
            "name": method.name,
            "amount": shipping_amount,
            "tax": shipping_tax,
            "address": address,
        },
        "tax_total": tax_total,
        "tax_inclusive": tax.inclusive,
        "total": total,
    }
