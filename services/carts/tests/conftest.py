"""Fixtures for the carts service: the real app, beside a real products service it prices from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from carts_support import Catalog, Client, Shop

from carts.app import create_app
from carts.settings import CartsSettings
from products.app import create_app as create_products_app
from products.settings import ProductsSettings
from shopkit.settings import load
from shopkit.testing.tokens import TokenFactory

Serve = Callable[[Any], Awaitable[Client]]


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture
async def products(
    serve: Serve,
    service_env: dict[str, str],
    opensearch_url: str,
    database_name: str,
    database_names: set[str],
    tokens: TokenFactory,
) -> Client:
    """The products service carts asks for prices, with a database and event stream of its own."""
    database_names.add(database_name + "_products")
    settings = load(
        ProductsSettings,
        {
            **service_env,
            "MONGO_DATABASE": database_name + "_products",
            "SERVICE_NAME": "products" + database_name,
            "OPENSEARCH_URL": opensearch_url,
            "SEARCH_INDEX": database_name,
        },
    )
    return await serve(create_products_app(settings, keys=tokens.keys()))


@pytest.fixture
def carts_env(service_env: dict[str, str], products: Client, database_name: str) -> dict[str, str]:
    return {
        **service_env,
        "SERVICE_NAME": "carts" + database_name,
        "PRODUCTS_URL": str(products.make_url("")).rstrip("/"),
        "PRODUCTS_SERVICE": "products" + database_name,
        "PRODUCTS_TIMEOUT": "0.5",
    }


@pytest.fixture
def start_carts(
    serve: Serve, carts_env: dict[str, str], tokens: TokenFactory
) -> Callable[..., Awaitable[Client]]:
    """Start an instance of carts (several share the database and broker, as in production)."""

    async def start(**overrides: str) -> Client:
        settings = load(CartsSettings, {**carts_env, **overrides})
        return await serve(create_app(settings, keys=tokens.keys()))

    return start


@pytest.fixture
def catalog(products: Client, tokens: TokenFactory) -> Catalog:
    return Catalog(products, tokens)


@pytest.fixture
async def shop(start_carts: Callable[..., Awaitable[Client]], tokens: TokenFactory) -> Shop:
    return Shop(await start_carts(), tokens)
