"""The payments service's business metrics, in the app's registry beside the kit's RED metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter


@dataclass(frozen=True, slots=True)
class PaymentMetrics:
    created: Counter
    succeeded: Counter
    failed: Counter
    disputes: Counter
    amount_mismatches: Counter
    refunds: Counter
    automatic_refunds: Counter
    stripe_events: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> PaymentMetrics:
        return cls(
            created=Counter(
                "payments_created", "PaymentIntents created", ["currency"], registry=registry
            ),
            succeeded=Counter(
                "payments_succeeded", "Payments that succeeded", ["currency"], registry=registry
            ),
            failed=Counter(
                "payments_failed",
                "Payments that failed, by Stripe's decline or error code",
                ["code"],
                registry=registry,
            ),
            disputes=Counter(
                "payments_disputes", "Disputes opened on a payment", registry=registry
            ),
            amount_mismatches=Counter(
                "payments_amount_mismatches",
                "Successful payments whose amount or currency at Stripe differs from the order's",
                registry=registry,
            ),
            refunds=Counter(
                "payments_refunds", "Refunds by outcome", ["outcome"], registry=registry
            ),
            automatic_refunds=Counter(
                "payments_automatic_refunds",
                "Refunds of payments whose order ended (cancelled or expired)",
                registry=registry,
            ),
            stripe_events=Counter(
                "payments_stripe_events",
                "Stripe events received (webhooks and the reconciler's listing)",
                ["type", "outcome"],
                registry=registry,
            ),
        )
