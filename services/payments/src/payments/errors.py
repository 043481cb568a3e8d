"""The situations the payments service answers with, as the kit's problem types."""

from __future__ import annotations

from shopkit.headers import RETRY_AFTER
from shopkit.problems import (
    BadGateway,
    BadRequest,
    Conflict,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)


class PaymentNotFound(NotFound):
    slug, title = "payment-not-found", "No payment for this order"


class PaymentMismatch(Conflict):
    slug, title = "payment-mismatch", "The order's payment was created for another amount"


class PaymentInProgress(Conflict):
    """Another call is creating this order's PaymentIntent right now: retry in a moment."""

    slug, title = "payment-in-progress", "The payment is being created"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={RETRY_AFTER: "1"})


class PaymentNotPaid(Conflict):
    slug, title = "payment-not-paid", "The payment has not succeeded"


class RefundExceedsPayment(Conflict):
    slug, title = "refund-exceeds-payment", "The refund is more than what is left to refund"


class RefundMismatch(Conflict):
    slug, title = "refund-mismatch", "This refund id was used for another amount"


class AmountTooSmall(ValidationFailed):
    slug, title = "amount-too-small", "The amount is below what Stripe charges in this currency"

    def __init__(self, detail: str, minimum: int | None = None) -> None:
        extensions = {"minimum": minimum} if minimum is not None else {}
        super().__init__(detail, errors={"amount": [detail]}, **extensions)


class PaymentRejected(ValidationFailed):
    slug, title = "payment-rejected", "Stripe refused the payment as asked"


class StripeUnavailable(ServiceUnavailable):
    slug, title = "stripe-unavailable", "Stripe cannot be reached right now"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={RETRY_AFTER: "2"})


class StripeFailed(BadGateway):
    slug, title = "stripe-failed", "Stripe refused the platform's credentials or request"


class InvalidSignature(BadRequest):
    slug, title = "invalid-signature", "The webhook's Stripe-Signature does not verify"


class OrderEnded(Conflict):
    slug, title = "order-ended", "The order was cancelled or expired"
