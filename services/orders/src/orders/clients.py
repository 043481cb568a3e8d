"""The services checkout calls and what their answers mean to an order.

carts (the caller's cart, read with the caller's own credentials; its hold, with the service
token), products (the reservation), payments (the PaymentIntent) and users (a saved address). Every
call below is keyed by the order, so repeating one is safe; the kit's client bounds each in time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orders.errors import (
    AddressNotFound,
    BelowMinimumCharge,
    CartEmpty,
    CartNotReady,
    CheckoutInProgress,
    InsufficientStock,
    PaymentNotRefundable,
    RefundTooLarge,
)
from shopkit.http import ServiceClient, UpstreamResponse
from shopkit.problems import BadGateway, Conflict, NotFound, Unauthorized
from shopkit.service_tokens import ServiceTokens


class CartHeldByOther(Conflict):
    """The cart is held for another order (`order_id`): checkout looks that one up."""

    slug, title = "cart-held", "Another order is checking this cart out"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} is checking this cart out", order_id=order_id)
        self.order_id = order_id


@dataclass(frozen=True, slots=True)
class Upstreams:
    carts: ServiceClient
    products: ServiceClient
    payments: ServiceClient
    users: ServiceClient
    tokens: ServiceTokens

    # --- carts

    async def current_cart(self, credentials: Mapping[str, str]) -> dict[str, Any]:
        """The caller's cart, read as the caller (their bearer token or guest cart token)."""
        answer = await self.carts.request("GET", "/api/v1/carts/current", headers=credentials)
        if answer.status in (401, 403):
            raise Unauthorized(str((answer.body or {}).get("detail") or "not signed in"))
        body = _expect(answer, 200, "carts")
        if not body.get("id") or not body.get("lines"):
            raise CartEmpty("the cart is empty: add something first")
        return body

    async def hold_cart(self, cart_id: str, order_id: str) -> dict[str, Any]:
        """Hold the cart for the order: its lines at live prices."""
        answer = await self.carts.request(
            "POST",
            f"/internal/carts/{cart_id}/checkout",
            json={"order_id": order_id},
            token=await self.tokens.token(),
            repeatable=True,
        )
        if answer.status == 409:
            body = answer.body or {}
            if str(body.get("type", "")).endswith("/cart-held") and body.get("order_id"):
                raise CartHeldByOther(str(body["order_id"]))
            if body.get("problems") == []:
                raise CartEmpty(str(body.get("detail") or "the cart is empty"))
            raise CartNotReady(
                "some lines cannot be ordered as they are: see `problems`",
                problems=body.get("problems") or [],
            )
        return _expect(answer, (200, 201), "carts")

    async def release_cart(self, cart_id: str, order_id: str) -> None:
        answer = await self.carts.request(
            "POST",
            f"/internal/carts/{cart_id}/checkout/{order_id}/release",
            token=await self.tokens.token(),
            repeatable=True,
        )
        if answer.status not in (204, 404):
            raise BadGateway(f"carts answered {answer.status} to a release")

    # --- products

    async def reserve(self, order_id: str, lines: list[dict[str, Any]], ttl_seconds: int) -> None:
        answer = await self.products.request(
            "POST",
            "/internal/inventory/reservations",
            json={
                "order_id": order_id,
                "lines": [{"sku": line["sku"], "quantity": line["quantity"]} for line in lines],
                "ttl_seconds": ttl_seconds,
            },
            token=await self.tokens.token(),
            repeatable=True,
        )
        if answer.status == 409:
            body = answer.body or {}
            if str(body.get("type", "")).endswith("/insufficient-stock"):
                raise InsufficientStock(body.get("unavailable") or [])
            raise CheckoutInProgress(
                str(body.get("detail") or "the stock is being reserved; retry"),
                headers={"Retry-After": answer.headers.get("Retry-After", "1")},
            )
        _expect(answer, (200, 201), "products")

    async def release_stock(self, order_id: str, reason: str) -> None:
        answer = await self.products.request(
            "POST",
            f"/internal/inventory/reservations/{order_id}/release",
            json={"reason": reason},
            token=await self.tokens.token(),
            repeatable=True,
        )
        if answer.status not in (204, 404):
            raise BadGateway(f"products answered {answer.status} to a release")

    # --- payments

    async def create_payment(
        self, order_id: str, amount: int, currency: str, email: str
    ) -> dict[str, Any]:
        """The order's PaymentIntent (made once per order, however often asked)."""
        answer = await self.payments.request(
            "POST",
            "/internal/payments",
            json={"order_id": order_id, "amount": amount, "currency": currency, "email": email},
            token=await self.tokens.token(),
            repeatable=True,
        )
        if answer.status == 422:
            body = answer.body or {}
            if str(body.get("type", "")).endswith("/amount-too-small"):
                raise BelowMinimumCharge(str(body.get("detail") or "the total is too small"))
        return _expect(answer, (200, 201), "payments")

    async def payment(self, order_id: str) -> dict[str, Any] | None:
        answer = await self.payments.request(
            "GET", f"/internal/payments/{order_id}", token=await self.tokens.token()
        )
        if answer.status == 404:
            return None
        return _expect(answer, 200, "payments")

    async def refund(
        self, order_id: str, refund_id: str, amount: int, reason: str
    ) -> dict[str, Any]:
        answer = await self.payments.request(
            "POST",
            f"/internal/payments/{order_id}/refunds",
            json={"refund_id": refund_id, "amount": amount, "reason": reason},
            token=await self.tokens.token(),
            repeatable=True,
        )
        if answer.status == 409:
            body = answer.body or {}
            detail = str(body.get("detail") or "the refund was refused")
            if str(body.get("type", "")).endswith("/refund-exceeds-payment"):
                raise RefundTooLarge(detail)
            raise PaymentNotRefundable(detail)
        return _expect(answer, (200, 201), "payments")

    # --- users

    async def saved_address(
        self, address_id: str, credentials: Mapping[str, str]
    ) -> dict[str, Any]:
        answer = await self.users.request(
            "GET", f"/api/v1/users/me/addresses/{address_id}", headers=credentials
        )
        if answer.status == 404:
            raise AddressNotFound(
                f"no saved address {address_id}",
                errors={"address_id": ["no such address in your address book"]},
            )
        return _expect(answer, 200, "users")

    async def email_of_caller(self, credentials: Mapping[str, str]) -> str | None:
        answer = await self.users.request("GET", "/api/v1/users/me", headers=credentials)
        body = _expect(answer, 200, "users")
        email = body.get("email")
        return str(email) if email else None


def _expect(answer: UpstreamResponse, statuses: int | tuple[int, ...], name: str) -> dict[str, Any]:
    wanted = (statuses,) if isinstance(statuses, int) else statuses
    if answer.status == 404:
        raise NotFound(str((answer.body or {}).get("detail") or f"{name} found nothing"))
    if answer.status not in wanted or not isinstance(answer.body, dict):
        raise BadGateway(f"the {name} service answered {answer.status}")
    return answer.body
