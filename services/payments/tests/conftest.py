"""Fixtures for the payments service: the real app against stripe-mock behind the recording proxy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from payments_support import WEBHOOK_SECRET, Client, Shop

from payments.app import create_app
from payments.settings import PaymentsSettings
from shopkit.settings import load
from shopkit.testing.stripe import StripeProxy
from shopkit.testing.tokens import TokenFactory


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture
def payments_env(
    service_env: dict[str, str], stripe_proxy: StripeProxy, database_name: str
) -> dict[str, str]:
    return {
        **service_env,
        "ENVIRONMENT": "local",
        "SERVICE_NAME": "payments" + database_name,
        "ORDERS_SERVICE": "orders" + database_name,
        "STRIPE_API_URL": stripe_proxy.url,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_TIMEOUT": "3",
        "STRIPE_MAX_RETRIES": "1",
        "RECONCILE_INTERVAL": "3600",
        "RECONCILE_AFTER": "900",
    }


@pytest.fixture
def start_payments(
    serve: Callable[[Any], Awaitable[Client]],
    payments_env: dict[str, str],
    tokens: TokenFactory,
) -> Callable[..., Awaitable[Shop]]:
    """Start an instance of payments (several share the database and broker, as in production)."""

    async def start(**overrides: str) -> Shop:
        env = {**payments_env, **overrides}
        settings = load(PaymentsSettings, env)
        client = await serve(create_app(settings, keys=tokens.keys()))
        return Shop(client, tokens, env["SERVICE_NAME"], env["ORDERS_SERVICE"])

    return start


@pytest.fixture
async def shop(start_payments: Callable[..., Awaitable[Shop]]) -> Shop:
    return await start_payments()
