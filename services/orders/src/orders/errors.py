"""The situations the orders service answers with, as the kit's problem types."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shopkit.problems import Conflict, NotFound, Unauthorized, ValidationFailed


class OrderNotFound(NotFound):
    slug, title = "order-not-found", "Order not found"


class AddressNotFound(ValidationFailed):
    slug, title = "address-not-found", "The saved address does not exist"


class ShippingUnavailable(ValidationFailed):
    slug, title = "shipping-unavailable", "The shipping method does not ship there"


class GuestDetailsMissing(ValidationFailed):
    slug, title = "guest-details-missing", "A guest order needs an email and a shipping address"


class CartRequired(Unauthorized):
    slug, title = "cart-required", "Sign in, or send the guest cart's X-Cart-Token"


class CartEmpty(Conflict):
    slug, title = "cart-empty", "The cart is empty"


class CartNotReady(Conflict):
    slug, title = "cart-not-ready", "Some lines of the cart cannot be ordered as they are"


class InsufficientStock(Conflict):
    slug, title = "insufficient-stock", "Some SKUs are short of stock"

    def __init__(self, shortages: Sequence[dict[str, Any]]) -> None:
        names = ", ".join(str(short.get("sku")) for short in shortages)
        super().__init__(f"not enough stock of {names}", shortages=list(shortages))


class BelowMinimumCharge(ValidationFailed):
    slug, title = "below-minimum-charge", "The order total is below the smallest charge possible"


class AboveMaximumCharge(ValidationFailed):
    slug, title = "above-maximum-charge", "The order total is above the largest charge possible"


class CheckoutInProgress(Conflict):
    slug, title = "checkout-in-progress", "The cart is being checked out; retry in a moment"


class CheckoutAbandoned(Conflict):
    slug, title = "checkout-abandoned", "This checkout was given up; place the order again"


class TransitionNotAllowed(Conflict):
    slug, title = "transition-not-allowed", "The order cannot do that in its state"

    def __init__(self, action: str, allowed: Sequence[str], state: str) -> None:
        super().__init__(
            f"cannot {action} an order that is {state}; allowed: {', '.join(allowed) or 'none'}",
            action=action,
            allowed_actions=list(allowed),
        )


class RefundTooLarge(Conflict):
    slug, title = "refund-exceeds-payment", "The refund is more than what is left to refund"


class PaymentNotRefundable(Conflict):
    slug, title = "payment-not-refundable", "The payment cannot be refunded in its state"
