"""The carts service's settings: the kit's plus where prices come from, and how long carts live."""

from __future__ import annotations

from dataclasses import dataclass

from shopkit.settings import KitSettings, env


@dataclass(frozen=True, slots=True, kw_only=True)
class CartsSettings(KitSettings):
    service_name: str = env(
        "SERVICE_NAME", "carts", help="service name used in logs, metrics and events"
    )
    products_url: str = env(
        "PRODUCTS_URL", "http://127.0.0.1:8080", help="products service (its batch SKU lookup)"
    )
    products_service: str = env(
        "PRODUCTS_SERVICE",
        "products",
        help="name the products service publishes its events under (its stream and subjects)",
    )
    orders_service: str = env(
        "ORDERS_SERVICE",
        "orders",
        help="name the orders service publishes its events under (its stream and subjects)",
    )
    default_currency: str = env(
        "DEFAULT_CURRENCY", "EUR", help="currency an empty cart's totals are shown in (ISO 4217)"
    )
    products_timeout: float = env(
        "PRODUCTS_TIMEOUT",
        1.0,
        help="seconds a cart waits for prices before answering with the last known ones",
    )
    price_ttl: float = env(
        "PRICE_TTL",
        60.0,
        help="seconds a SKU's price and stock are reused before asking products again "
        "(product.changed and stock events refresh them sooner)",
    )
    guest_cart_days: int = env(
        "GUEST_CART_DAYS", 30, help="days a guest cart lives after its last change"
    )
    user_cart_days: int = env(
        "USER_CART_DAYS", 180, help="days a signed-in user's cart lives after its last change"
    )
    empty_cart_hours: int = env(
        "EMPTY_CART_HOURS", 6, help="hours an empty cart lives after its last change"
    )
    guest_carts_per_minute: int = env(
        "GUEST_CARTS_PER_MINUTE",
        20,
        help="guest carts one client address may create per minute, per instance",
    )
    checkout_hold: int = env(
        "CHECKOUT_HOLD",
        1800,
        help="seconds a checkout holds a cart for its pending order unless the order ends sooner",
    )
