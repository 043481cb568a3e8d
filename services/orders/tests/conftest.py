"""Fixtures for the orders service: the real app beside real products, carts and payments services
(in this process, each with a database of its own), with Stripe served by stripe-mock behind the
test's recording proxy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from carts_support import Catalog
from orders_support import Client, Shop

from carts.app import create_app as create_carts_app
from carts.settings import CartsSettings
from orders.app import create_app
from orders.settings import OrdersSettings
from payments.app import create_app as create_payments_app
from payments.settings import PaymentsSettings
from products.app import create_app as create_products_app
from products.settings import ProductsSettings
from shopkit.service_tokens import StaticToken
from shopkit.settings import load
from shopkit.testing.stripe import StripeProxy
from shopkit.testing.tokens import TokenFactory

Serve = Callable[[Any], Awaitable[Client]]
WEBHOOK_SECRET = "whsec_orders_tests"


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture
def names(database_name: str, database_names: set[str]) -> dict[str, str]:
    """Each service's name (its database, stream and subjects) for this test alone."""
    found = {name: f"{name}{database_name}" for name in ("products", "carts", "payments", "orders")}
    database_names.update(found.values())
    return found


@pytest.fixture
async def products(
    serve: Serve,
    service_env: dict[str, str],
    opensearch_url: str,
    names: dict[str, str],
    tokens: TokenFactory,
) -> Client:
    settings = load(
        ProductsSettings,
        {
            **service_env,
            "MONGO_DATABASE": names["products"],
            "SERVICE_NAME": names["products"],
            "ORDERS_SERVICE": names["orders"],
            "OPENSEARCH_URL": opensearch_url,
            "SEARCH_INDEX": names["products"],
        },
    )
    return await serve(create_products_app(settings, keys=tokens.keys()))


@pytest.fixture
async def carts(
    serve: Serve,
    service_env: dict[str, str],
    products: Client,
    names: dict[str, str],
    tokens: TokenFactory,
) -> Client:
    settings = load(
        CartsSettings,
        {
            **service_env,
            "MONGO_DATABASE": names["carts"],
            "SERVICE_NAME": names["carts"],
            "PRODUCTS_URL": _url(products),
            "PRODUCTS_SERVICE": names["products"],
            "ORDERS_SERVICE": names["orders"],
            "GUEST_CARTS_PER_MINUTE": "100000",
            # A checkout's live prices may wait: hundreds of checkouts share this one process.
            "PRODUCTS_TIMEOUT": "10",
        },
    )
    return await serve(create_carts_app(settings, keys=tokens.keys()))


@pytest.fixture
def payments_env(
    service_env: dict[str, str], names: dict[str, str], stripe_proxy: StripeProxy
) -> dict[str, str]:
    return {
        **service_env,
        "MONGO_DATABASE": names["payments"],
        "SERVICE_NAME": names["payments"],
        "ORDERS_SERVICE": names["orders"],
        "STRIPE_API_URL": stripe_proxy.url,
        "STRIPE_API_KEY": "sk_test_orders",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_TIMEOUT": "3",
    }


@pytest.fixture
def start_payments(
    serve: Serve, payments_env: dict[str, str], tokens: TokenFactory
) -> Callable[..., Awaitable[Client]]:
    async def start(**overrides: str) -> Client:
        settings = load(PaymentsSettings, {**payments_env, **overrides})
        return await serve(create_payments_app(settings, keys=tokens.keys()))

    return start


@pytest.fixture
async def payments(start_payments: Callable[..., Awaitable[Client]]) -> Client:
    return await start_payments()


@pytest.fixture
def orders_env(
    service_env: dict[str, str],
    names: dict[str, str],
    products: Client,
    carts: Client,
    payments: Client,
) -> dict[str, str]:
    return {
        **service_env,
        "MONGO_DATABASE": names["orders"],
        "SERVICE_NAME": names["orders"],
        "PAYMENTS_SERVICE": names["payments"],
        "CARTS_URL": _url(carts),
        "PRODUCTS_URL": _url(products),
        "PAYMENTS_URL": _url(payments),
        "USERS_URL": "http://127.0.0.1:9",  # no users: tests give the address and email inline
        "ORDER_SWEEP_INTERVAL": "0.2",
        # Every service of these tests shares one process and event loop: under the races'
        # hundreds of checkouts, a call is slow without being lost.
        "UPSTREAM_TIMEOUT": "30",
    }


@pytest.fixture
def start_orders(
    serve: Serve, orders_env: dict[str, str], tokens: TokenFactory
) -> Callable[..., Awaitable[Client]]:
    """Start an instance of orders (several share the database and broker, as in production)."""
    service_token = tokens.mint("service:orders", "service", ttl=3600)

    async def start(**overrides: str) -> Client:
        settings = load(OrdersSettings, {**orders_env, **overrides})
        app = create_app(
            settings, keys=tokens.keys(), service_tokens=lambda _app: StaticToken(service_token)
        )
        return await serve(app)

    return start


@pytest.fixture
def catalog(products: Client, tokens: TokenFactory) -> Catalog:
    return Catalog(products, tokens)


@pytest.fixture
async def shop(
    start_orders: Callable[..., Awaitable[Client]],
    carts: Client,
    payments: Client,
    catalog: Catalog,
    tokens: TokenFactory,
    stripe_proxy: StripeProxy,
    nats_client: Any,
    names: dict[str, str],
) -> Shop:
    return Shop(
        orders=await start_orders(),
        carts=carts,
        payments=payments,
        catalog=catalog,
        tokens=tokens,
        stripe=stripe_proxy,
        webhook_secret=WEBHOOK_SECRET,
        nats=nats_client,
        names=names,
    )


def _url(client: Client) -> str:
    return str(client.make_url("")).rstrip("/")
