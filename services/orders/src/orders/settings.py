"""The orders service's settings: the kit's, the services checkout calls, and its clock."""

from __future__ import annotations

from dataclasses import dataclass

from shopkit.settings import KitSettings, Secret, env

RESERVATION_LIMIT = 7 * 24 * 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class OrdersSettings(KitSettings):
    service_name: str = env(
        "SERVICE_NAME", "orders", help="service name used in logs, metrics and events"
    )
    carts_url: str = env(
        "CARTS_URL", "http://127.0.0.1:8090", help="carts service (the caller's cart, its hold)"
    )
    products_url: str = env(
        "PRODUCTS_URL", "http://127.0.0.1:8090", help="products service (stock reservations)"
    )
    payments_url: str = env(
        "PAYMENTS_URL", "http://127.0.0.1:8090", help="payments service (PaymentIntents, refunds)"
    )
    payments_service: str = env(
        "PAYMENTS_SERVICE",
        "payments",
        help="name the payments service publishes its events under (its stream and subjects)",
    )
    users_url: str = env(
        "USERS_URL",
        "http://127.0.0.1:8090",
        help="users service (saved addresses, the caller's email, service tokens)",
    )
    service_client_id: str = env(
        "SERVICE_CLIENT_ID",
        "",
        help="this service's client id at users (client credentials); SERVICE_NAME when empty",
    )
    service_client_secret: Secret = env(
        "SERVICE_CLIENT_SECRET",
        Secret(""),
        help="this service's client secret at users (see users' SERVICE_CLIENTS)",
    )
    upstream_timeout: float = env(
        "UPSTREAM_TIMEOUT",
        10.0,
        help="seconds one call to another service may take, retries included",
    )
    payment_window: int = env(
        "PAYMENT_WINDOW",
        900,
        help="seconds a pending order waits for its payment before it expires",
    )
    checkout_deadline: int = env(
        "CHECKOUT_DEADLINE",
        120,
        help="seconds after which a checkout that has not placed its order is given up",
    )
    reservation_grace: int = env(
        "RESERVATION_GRACE",
        518400,
        help="seconds products holds an order's stock past PAYMENT_WINDOW by itself: a payment "
        "that is processing (a bank debit) keeps the order, and so its stock, that long; orders "
        "releases the stock itself when the order ends",
    )
    sweep_interval: float = env(
        "ORDER_SWEEP_INTERVAL", 5.0, help="seconds between two passes of the expiry sweeper"
    )
    rates_file: str = env(
        "RATES_FILE",
        "",
        help="TOML file of shipping methods and tax rates (the packaged rates.toml when empty)",
    )

    def __post_init__(self) -> None:
        # products holds a reservation at most 7 days: beyond, every checkout would be refused.
        if self.payment_window + self.reservation_grace > RESERVATION_LIMIT:
            raise ValueError(
                "PAYMENT_WINDOW + RESERVATION_GRACE: at most 604800 seconds (products holds "
                "stock at most 7 days)"
            )
