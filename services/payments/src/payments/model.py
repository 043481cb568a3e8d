"""An order's payment as its stream folds it, and the decisions that change it.

The stream `payment-<order id>` holds the PaymentIntent's life (created, processing, succeeded,
failed, cancelled, disputed) and every refund of it (requested, then succeeded or failed). Each
decision here looks at the folded state and refuses (a problem), does nothing (None) or names the
one event to append, with an id derived from its cause so that a retry lands once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from payments.errors import (
    PaymentNotFound,
    PaymentNotPaid,
    RefundExceedsPayment,
    RefundMismatch,
)
from payments.events import (
    PaymentChanged,
    PaymentCreated,
    PaymentDisputed,
    PaymentEvent,
    RefundChanged,
    RefundEvent,
)
from shopkit.events import Decision, Event, NewEvent

STREAM_PREFIX = "payment-"


def stream_id(order_id: str) -> str:
    return f"{STREAM_PREFIX}{order_id}"


class PaymentStatus(StrEnum):
    """The payment's status as answered: the intent's, refined by what was refunded."""

    AWAITING = "awaiting"
    PROCESSING = "processing"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Intent(StrEnum):
    """Where the PaymentIntent stands, as far as the platform knows."""

    AWAITING = "awaiting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Nothing changes these: Stripe never moves a succeeded or cancelled PaymentIntent on.
FINAL = frozenset({Intent.SUCCEEDED, Intent.CANCELLED})
_EVENT_OF = {
    Intent.PROCESSING: PaymentEvent.PROCESSING,
    Intent.SUCCEEDED: PaymentEvent.SUCCEEDED,
    Intent.FAILED: PaymentEvent.FAILED,
    Intent.CANCELLED: PaymentEvent.CANCELLED,
}
_INTENT_OF = {event: intent for intent, event in _EVENT_OF.items()}


class RefundStatus(StrEnum):
    REQUESTED = "requested"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# The refund an order that ended gets: at most one, for whatever was left to refund.
ORDER_ENDED_REFUND = "order-ended"


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    amount: int
    reason: str
    status: RefundStatus
    automatic: bool
    stripe_refund_id: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "refund_id": self.refund_id,
            "amount": self.amount,
            "reason": self.reason,
            "status": str(self.status),
            "automatic": self.automatic,
            "stripe_refund_id": self.stripe_refund_id,
        }


@dataclass(frozen=True, slots=True)
class Dispute:
    dispute_id: str
    amount: int
    currency: str
    reason: str

    def to_json(self) -> dict[str, object]:
        return {
            "dispute_id": self.dispute_id,
            "amount": self.amount,
            "currency": self.currency,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Payment:
    order_id: str = ""
    payment_intent_id: str | None = None
    amount: int = 0
    currency: str = ""
    intent: Intent = Intent.AWAITING
    # When Stripe reported the intent's last change (Unix seconds): orders non-final changes.
    intent_at: int = 0
    reason: str | None = None
    paid_amount: int = 0
    refunds: tuple[Refund, ...] = ()
    disputes: tuple[Dispute, ...] = ()

    @property
    def exists(self) -> bool:
        return self.payment_intent_id is not None

    @property
    def refunded_amount(self) -> int:
        return sum(r.amount for r in self.refunds if r.status is RefundStatus.SUCCEEDED)

    @property
    def refundable(self) -> int:
        """What is left to refund: paid, less every refund requested that has not failed."""
        taken = sum(r.amount for r in self.refunds if r.status is not RefundStatus.FAILED)
        return self.paid_amount - taken

    @property
    def open_refunds(self) -> tuple[Refund, ...]:
        return tuple(r for r in self.refunds if r.status is RefundStatus.REQUESTED)

    @property
    def status(self) -> PaymentStatus:
        if self.intent is Intent.SUCCEEDED:
            refunded = self.refunded_amount
            if refunded and refunded >= self.paid_amount:
                return PaymentStatus.REFUNDED
            return PaymentStatus.PARTIALLY_REFUNDED if refunded else PaymentStatus.PAID
        return PaymentStatus(str(self.intent))

    def refund(self, refund_id: str) -> Refund | None:
        return next((r for r in self.refunds if r.refund_id == refund_id), None)


def fold(payment: Payment, event: Event) -> Payment:
    data = event.data
    if event.type == PaymentEvent.CREATED:
        created = PaymentCreated.from_json(data)
        return replace(
            payment,
            order_id=created.order_id,
            payment_intent_id=created.payment_intent_id,
            amount=created.amount,
            currency=created.currency,
        )
    if event.type in _INTENT_OF:
        changed = PaymentChanged.from_json(data)
        intent = _INTENT_OF[PaymentEvent(event.type)]
        paid = changed.amount if intent is Intent.SUCCEEDED else payment.paid_amount
        return replace(
            payment,
            intent=intent,
            intent_at=changed.stripe_created or payment.intent_at,
            reason=changed.reason,
            paid_amount=paid,
        )
    if event.type == PaymentEvent.DISPUTED:
        disputed = PaymentDisputed.from_json(data)
        dispute = Dispute(disputed.dispute_id, disputed.amount, disputed.currency, disputed.reason)
        return replace(payment, disputes=(*payment.disputes, dispute))
    if event.type in set(RefundEvent):
        changed_refund = RefundChanged.from_json(data)
        status = RefundStatus(event.type.removeprefix("refund."))
        known = payment.refund(changed_refund.refund_id)
        refund = Refund(
            refund_id=changed_refund.refund_id,
            amount=changed_refund.amount,
            reason=changed_refund.reason,
            status=status,
            automatic=changed_refund.automatic,
            stripe_refund_id=changed_refund.stripe_refund_id
            or (known.stripe_refund_id if known else None),
        )
        if known is None:
            return replace(payment, refunds=(*payment.refunds, refund))
        refunds = tuple(refund if r.refund_id == refund.refund_id else r for r in payment.refunds)
        return replace(payment, refunds=refunds)
    return payment


# --- decisions


def created(order_id: str, payment_intent_id: str, amount: int, currency: str) -> Decision[Payment]:
    """Record the PaymentIntent: the stream's first event, so the insert at seq 1 decides a race."""

    def decision(payment: Payment) -> NewEvent | None:
        if payment.exists:
            return None
        data = PaymentCreated(order_id, payment_intent_id, amount, currency)
        return NewEvent(PaymentEvent.CREATED, data.to_json(), id=f"{stream_id(order_id)}:created")

    return decision


def intent_event_id(order_id: str, intent: Intent, cause: str) -> str:
    """A final change happens once whatever reported it; a non-final one once per report."""
    if intent in FINAL:
        return f"{stream_id(order_id)}:{intent}"
    return f"{stream_id(order_id)}:{intent}:{cause}"


def intent_changed(intent: Intent, at: int, reason: str | None, event_id: str) -> Decision[Payment]:
    """Stripe reported the intent in `intent` at `at`: the latest state wins. Succeeded and
    cancelled are final (only a success overrides a cancellation); processing and failed replace
    each other in the order Stripe reported them (a failed payment may still succeed when the
    customer tries again)."""

    def decision(payment: Payment) -> NewEvent | None:
        if not payment.exists:
            raise PaymentNotFound(f"no PaymentIntent recorded for order {payment.order_id}")
        if payment.intent is Intent.SUCCEEDED or payment.intent is intent:
            return None
        # A success reported after a cancellation is money taken all the same (Stripe cannot do
        # both, but if it says so the customer paid): it is recorded, so that it is refunded.
        if payment.intent is Intent.CANCELLED and intent is not Intent.SUCCEEDED:
            return None
        if intent not in FINAL and at < payment.intent_at:
            return None  # older news than what the stream holds
        assert payment.payment_intent_id is not None
        data = PaymentChanged(
            payment.order_id,
            payment.payment_intent_id,
            payment.amount,
            payment.currency,
            reason=reason,
            stripe_created=at,
        )
        return NewEvent(_EVENT_OF[intent], data.to_json(), id=event_id)

    return decision


def refund_event_id(order_id: str, refund_id: str, status: RefundStatus) -> str:
    return f"{stream_id(order_id)}:refund:{refund_id}:{status}"


def refund_requested(
    refund_id: str,
    amount: int,
    reason: str,
    *,
    automatic: bool = False,
    stripe_refund_id: str | None = None,
) -> Decision[Payment]:
    """Ask for a refund of `amount` if that much is left to refund. A refund Stripe made without
    the platform (`stripe_refund_id` given: the dashboard) is recorded as it is, Stripe having
    checked it."""

    def decision(payment: Payment) -> NewEvent | None:
        if not payment.exists:
            raise PaymentNotFound(f"no payment for order {payment.order_id}")
        known = payment.refund(refund_id)
        if known is not None:
            if known.amount != amount and not automatic and stripe_refund_id is None:
                raise RefundMismatch(
                    f"refund {refund_id} was asked for {known.amount}, not {amount}",
                    amount=known.amount,
                )
            return None
        if payment.intent is not Intent.SUCCEEDED:
            raise PaymentNotPaid(f"the payment is {payment.status}, nothing to refund")
        if stripe_refund_id is None and amount > payment.refundable:
            raise RefundExceedsPayment(
                f"{payment.refundable} {payment.currency} is left to refund, not {amount}",
                refundable=payment.refundable,
                currency=payment.currency,
            )
        return _refund_event(
            payment, RefundEvent.REQUESTED, refund_id, amount, reason, automatic, stripe_refund_id
        )

    return decision


def refund_settled(
    refund_id: str, succeeded: bool, stripe_refund_id: str | None
) -> Decision[Payment]:
    """Stripe says how a requested refund ended; its first outcome stands."""

    def decision(payment: Payment) -> NewEvent | None:
        known = payment.refund(refund_id)
        if known is None or known.status is not RefundStatus.REQUESTED:
            return None
        kind = RefundEvent.SUCCEEDED if succeeded else RefundEvent.FAILED
        return _refund_event(
            payment,
            kind,
            refund_id,
            known.amount,
            known.reason,
            known.automatic,
            stripe_refund_id or known.stripe_refund_id,
            settled=succeeded,
        )

    return decision


def _refund_event(
    payment: Payment,
    kind: RefundEvent,
    refund_id: str,
    amount: int,
    reason: str,
    automatic: bool,
    stripe_refund_id: str | None,
    *,
    settled: bool = False,
) -> NewEvent:
    assert payment.payment_intent_id is not None
    data = RefundChanged(
        order_id=payment.order_id,
        payment_intent_id=payment.payment_intent_id,
        refund_id=refund_id,
        amount=amount,
        currency=payment.currency,
        reason=reason,
        refunded_total=payment.refunded_amount + (amount if settled else 0),
        automatic=automatic,
        stripe_refund_id=stripe_refund_id,
    )
    status = RefundStatus(kind.removeprefix("refund."))
    return NewEvent(kind, data.to_json(), id=refund_event_id(payment.order_id, refund_id, status))


def disputed(dispute: Dispute) -> Decision[Payment]:
    def decision(payment: Payment) -> NewEvent | None:
        if not payment.exists:
            raise PaymentNotFound(f"no payment for order {payment.order_id}")
        if any(d.dispute_id == dispute.dispute_id for d in payment.disputes):
            return None
        assert payment.payment_intent_id is not None
        data = PaymentDisputed(
            payment.order_id,
            payment.payment_intent_id,
            dispute.dispute_id,
            dispute.amount,
            dispute.currency,
            dispute.reason,
        )
        event_id = f"{stream_id(payment.order_id)}:dispute:{dispute.dispute_id}"
        return NewEvent(PaymentEvent.DISPUTED, data.to_json(), id=event_id)

    return decision
