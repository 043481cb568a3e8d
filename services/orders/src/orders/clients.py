"""The services checkout calls, and what their answers mean to an order.

carts (the caller's cart, read with the caller's own credentials; its hold, with the service
token), products (the reservation), payments (the PaymentIntent, refunds) and users (a saved
address, the caller's email). Every call below is keyed by the order, so repeating one is safe;
the kit's client bounds each in time. An upstream's refusal becomes this service's own problem;
an answer nobody expects is a 502, never the caller's 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError

from orders.errors import (
    AddressNotFound,
    BelowMinimumCharge,
    CartEmpty,
    CartNotReady,
    CheckoutAbandoned,
    CheckoutInProgress,
    InsufficientStock,
    PaymentNotRefundable,
    RefundTooLarge,
)
from shopkit.addresses import PostalAddressSchema
from shopkit.headers import RETRY_AFTER
from shopkit.http import ServiceClient, UpstreamResponse
from shopkit.problems import BadGateway, Conflict, Unauthorized
from shopkit.service_tokens import ServiceTokens

ADDRESS = PostalAddressSchema()


class CartHeldByOther(Conflict):
    """The cart is held for another order (`order_id`): checkout looks that one up."""

    slug, title = "cart-held", "Another order is checking this cart out"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} is checking this cart out", order_id=order_id)
        self.order_id = order_id


def _retry_later(answer: UpstreamResponse, detail: str) -> CheckoutInProgress:
    wait = answer.headers.get(RETRY_AFTER, "1")
    return CheckoutInProgress(
        str(answer.fields.get("detail") or detail), headers={RETRY_AFTER: wait}
    )


def _priced_cart(cart: dict[str, Any]) -> bool:
    """Whether carts answered a cart checkout can price: a currency, and lines each with a SKU,
    title, whole quantity and a price in minor units."""
    lines = cart.get("lines")
    return (
        isinstance(cart.get("currency"), str)
        and isinstance(lines, list)
        and all(
            isinstance(line, dict)
            and isinstance(line.get("sku"), str)
            and isinstance(line.get("quantity"), int)
            and isinstance((line.get("unit_price") or {}).get("amount"), int)
            for line in lines
        )
    )


def _unexpected(answer: UpstreamResponse, name: str) -> BadGateway:
    return BadGateway(
        f"the {name} service answered {answer.status} ({answer.problem or 'no problem type'})"
    )


@dataclass(frozen=True, slots=True)
class Upstreams:
    carts: ServiceClient
    products: ServiceClient
    payments: ServiceClient
    users: ServiceClient
    tokens: ServiceTokens

    async def _as_service(
        self, client: ServiceClient, method: str, path: str, body: Any = None
    ) -> UpstreamResponse:
        """A call on this service's own behalf; a refused token is dropped for the next call."""
        answer = await client.request(
            method, path, json=body, token=await self.tokens.token(), repeatable=True
        )
        if answer.status in (401, 403):
            self.tokens.forget()
            raise BadGateway(f"the {client.name} service refused this service's token")
        return answer

    # --- carts

    async def current_cart(self, credentials: Mapping[str, str]) -> dict[str, Any]:
        """The caller's cart, read as the caller (their bearer token or guest cart token)."""
        answer = await self.carts.request("GET", "/api/v1/carts/current", headers=credentials)
        if answer.status in (401, 403, 404):
            raise Unauthorized(str(answer.fields.get("detail") or "this cart is not yours"))
        if answer.status != 200 or not answer.fields:
            raise _unexpected(answer, "carts")
        cart = answer.fields
        if not cart.get("id") or not cart.get("lines"):
            raise CartEmpty("the cart is empty: add something first")
        return cart

    async def hold_cart(self, cart_id: str, order_id: str) -> dict[str, Any]:
        """Hold the cart for the order: its lines at live prices."""
        answer = await self._as_service(
            self.carts, "POST", f"/internal/carts/{cart_id}/checkout", {"order_id": order_id}
        )
        if answer.status in (200, 201) and _priced_cart(answer.fields):
            return answer.fields
        if answer.problem == "cart-held" and isinstance(answer.fields.get("order_id"), str):
            raise CartHeldByOther(answer.fields["order_id"])
        if answer.problem == "cart-not-found":
            raise CartEmpty("the cart is gone: add something to a new one")
        if answer.problem == "cart-not-ready":
            problems = answer.fields.get("problems")
            if not problems:
                detail = str(answer.fields.get("detail") or "")
                if "empty" in detail:
                    raise CartEmpty("the cart is empty: add something first")
                raise _retry_later(answer, "the cart keeps changing; retry")
            raise CartNotReady(
                "some lines cannot be ordered as they are: see `problems`", problems=problems
            )
        raise _unexpected(answer, "carts")

    async def release_cart(self, cart_id: str, order_id: str) -> None:
        path = f"/internal/carts/{cart_id}/checkout/{order_id}/release"
        answer = await self._as_service(self.carts, "POST", path)
        if answer.status not in (204, 404):
            raise _unexpected(answer, "carts")

    # --- products

    async def reserve(self, order_id: str, lines: list[dict[str, Any]], ttl_seconds: int) -> None:
        body = {
            "order_id": order_id,
            "lines": [{"sku": line["sku"], "quantity": line["quantity"]} for line in lines],
            "ttl_seconds": ttl_seconds,
        }
        answer = await self._as_service(
            self.products, "POST", "/internal/inventory/reservations", body
        )
        if answer.status in (200, 201):
            return
        if answer.problem == "insufficient-stock":
            raise InsufficientStock(answer.fields.get("unavailable") or [])
        if answer.problem == "reservation-in-progress":
            raise _retry_later(answer, "the stock is being reserved; retry")
        if answer.problem == "reservation-closed":
            raise CheckoutAbandoned(
                "this checkout was given up while it was made; place the order again"
            )
        raise _unexpected(answer, "products")

    async def release_stock(self, order_id: str, reason: str) -> None:
        path = f"/internal/inventory/reservations/{order_id}/release"
        answer = await self._as_service(self.products, "POST", path, {"reason": reason})
        if answer.status not in (204, 404):
            raise _unexpected(answer, "products")

    # --- payments

    async def create_payment(
        self, order_id: str, amount: int, currency: str, email: str
    ) -> dict[str, Any]:
        """The order's PaymentIntent (made once per order, however often asked)."""
        body = {"order_id": order_id, "amount": amount, "currency": currency, "email": email}
        answer = await self._as_service(self.payments, "POST", "/internal/payments", body)
        if answer.status in (200, 201) and answer.fields:
            return answer.fields
        if answer.problem == "amount-too-small":
            raise BelowMinimumCharge(str(answer.fields.get("detail") or "the total is too small"))
        if answer.problem == "payment-in-progress":
            raise _retry_later(answer, "the payment is being set up; retry")
        if answer.problem == "order-ended":
            raise CheckoutAbandoned(
                "this checkout was given up while it was made; place the order again"
            )
        raise _unexpected(answer, "payments")

    async def payment(self, order_id: str) -> dict[str, Any] | None:
        answer = await self._as_service(self.payments, "GET", f"/internal/payments/{order_id}")
        if answer.status == 404:
            return None
        if answer.status != 200 or not answer.fields:
            raise _unexpected(answer, "payments")
        return answer.fields

    async def refund(self, order_id: str, refund_id: str, amount: int, reason: str) -> None:
        body = {"refund_id": refund_id, "amount": amount, "reason": reason}
        answer = await self._as_service(
            self.payments, "POST", f"/internal/payments/{order_id}/refunds", body
        )
        if answer.status in (200, 201):
            return
        detail = str(answer.fields.get("detail") or "the refund was refused")
        if answer.problem == "refund-exceeds-payment":
            raise RefundTooLarge(detail, refundable=answer.fields.get("refundable"))
        if answer.status in (404, 409):
            raise PaymentNotRefundable(detail)
        raise _unexpected(answer, "payments")

    # --- users

    async def saved_address(
        self, address_id: str, credentials: Mapping[str, str]
    ) -> dict[str, Any]:
        """One of the caller's saved addresses, as a postal address (what the order keeps)."""
        path = f"/api/v1/users/me/addresses/{address_id}"
        answer = await self.users.request("GET", path, headers=credentials)
        if answer.status == 404:
            raise AddressNotFound(
                f"no saved address {address_id}",
                errors={"address_id": ["no such address in your address book"]},
            )
        if answer.status != 200:
            raise _unexpected(answer, "users")
        fields = {name: answer.fields.get(name) for name in ADDRESS.fields}
        try:
            address: dict[str, Any] = ADDRESS.load(fields)
        except ValidationError:
            raise _unexpected(answer, "users") from None
        return address

    async def email_of_caller(self, credentials: Mapping[str, str]) -> str | None:
        answer = await self.users.request("GET", "/api/v1/users/me", headers=credentials)
        if answer.status != 200:
            raise _unexpected(answer, "users")
        email = answer.fields.get("email")
        return email if isinstance(email, str) and email else None
