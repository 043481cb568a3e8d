"""The situations the carts service answers with, as the kit's problem types."""

from __future__ import annotations

from shopkit.headers import RETRY_AFTER
from shopkit.problems import (
    BadGateway,
    Conflict,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)


class CartNotFound(NotFound):
    slug, title = "cart-not-found", "Cart not found"


class LineNotFound(NotFound):
    slug, title = "line-not-found", "The cart has no line for this SKU"


class UnknownSku(ValidationFailed):
    slug, title = "unknown-sku", "The SKU is not for sale"

    def __init__(self, sku: str) -> None:
        super().__init__(
            f"SKU {sku} is unknown, archived or unpublished",
            errors={"sku": [f"{sku} is not for sale"]},
            sku=sku,
        )


class QuantityLimit(Conflict):
    slug, title = "quantity-limit", "The line would hold more than the most a line may"


class LineLimit(Conflict):
    slug, title = "line-limit", "The cart holds as many lines as it may"


class CurrencyMismatch(Conflict):
    slug, title = "currency-mismatch", "The SKU is priced in another currency than the cart"


class InsufficientStock(Conflict):
    slug, title = "insufficient-stock", "Not enough stock for this quantity"


class CartNotReady(Conflict):
    slug, title = "cart-not-ready", "The cart cannot be checked out as it is"


class CartHeld(Conflict):
    slug, title = "cart-held", "Another order is checking this cart out"


class PricesUnavailable(ServiceUnavailable):
    slug, title = "prices-unavailable", "Prices cannot be checked right now"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={RETRY_AFTER: "1"})


class ProductsFailed(BadGateway):
    slug, title = "products-failed", "The products service answered the price lookup wrongly"


class NotDue(Conflict):
    """The sweeper's decision to purge found the cart changed since it was scheduled."""

    slug, title = "not-due", "The cart changed since its purge was scheduled"
