"""The payments service's settings: the kit's, plus Stripe's address and secrets, and the reconciler's pace."""

from __future__ import annotations

from dataclasses import dataclass

from shopkit.settings import KitSettings, Secret, env

# The values of `.env.example`: public, so refused unless ENVIRONMENT=local.
EXAMPLE_API_KEY = "sk_test_123"
EXAMPLE_WEBHOOK_SECRET = "whsec_local"
# The SDK's waits between retries (0.5 s doubling, jittered, at most 5 s), for the bound of a call.
SDK_FIRST_RETRY_WAIT = 0.5
SDK_MAX_RETRY_WAIT = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentsSettings(KitSettings):
    service_name: str = env(
        "SERVICE_NAME", "payments", help="service name used in logs, metrics and events"
    )
    stripe_api_key: Secret = env(
        "STRIPE_API_KEY", Secret(EXAMPLE_API_KEY), help="Stripe secret API key (sk_...)"
    )
    stripe_webhook_secret: Secret = env(
        "STRIPE_WEBHOOK_SECRET",
        Secret(EXAMPLE_WEBHOOK_SECRET),
        help="signing secret of the Stripe webhook endpoint (whsec_...)",
    )
    stripe_api_url: str = env(
        "STRIPE_API_URL", "https://api.stripe.com", help="base address of Stripe's API"
    )
    stripe_timeout: float = env(
        "STRIPE_TIMEOUT", 10.0, help="seconds one request to Stripe may take"
    )
    stripe_max_retries: int = env(
        "STRIPE_MAX_RETRIES",
        2,
        help="retries of a request to Stripe that failed on the network or with a 409/5xx",
    )
    orders_service: str = env(
        "ORDERS_SERVICE",
        "orders",
        help="name the orders service publishes its events under (its stream and subjects)",
    )
    reconcile_interval: float = env(
        "RECONCILE_INTERVAL", 60.0, help="seconds between two passes of the reconciler"
    )
    reconcile_after: int = env(
        "RECONCILE_AFTER",
        900,
        help="seconds a payment or refund may stay unsettled before the reconciler asks Stripe",
    )

    def __post_init__(self) -> None:
        if self.stripe_timeout <= 0 or self.stripe_max_retries < 0:
            raise ValueError("STRIPE_TIMEOUT must be positive, STRIPE_MAX_RETRIES at least 0")
        if self.reconcile_interval <= 0 or self.reconcile_after <= 0:
            raise ValueError("RECONCILE_INTERVAL and RECONCILE_AFTER must be positive")
        if self.local:
            return
        examples = {
            "STRIPE_API_KEY": self.stripe_api_key.value == EXAMPLE_API_KEY,
            "STRIPE_WEBHOOK_SECRET": self.stripe_webhook_secret.value == EXAMPLE_WEBHOOK_SECRET,
        }
        if any(examples.values()):
            named = ", ".join(name for name, example in examples.items() if example)
            raise ValueError(
                f"{named}: the example value of .env.example is allowed only with "
                "ENVIRONMENT=local: set secrets of your own"
            )

    @property
    def stripe_budget(self) -> float:
        """The longest one call to Stripe may take, its retries and their waits included."""
        waits = sum(
            min(SDK_FIRST_RETRY_WAIT * 2**attempt, SDK_MAX_RETRY_WAIT)
            for attempt in range(self.stripe_max_retries)
        )
        return float(self.stripe_timeout * (self.stripe_max_retries + 1) + waits)
