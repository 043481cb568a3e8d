"""Fixtures for the products service: the real app against this test's database, NATS and OpenSearch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from opensearchpy import AsyncOpenSearch
from products_support import Client, Roles

from products.app import create_app
from products.search.service import make_client
from products.settings import ProductsSettings
from shopkit.settings import load
from shopkit.testing.tokens import TokenFactory


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture
def roles(tokens: TokenFactory) -> Roles:
    return Roles(tokens)


@pytest.fixture
def products_env(
    service_env: dict[str, str], opensearch_url: str, database_name: str
) -> dict[str, str]:
    return {
        **service_env,
        # Its own name, hence its own JetStream stream: no test's events reach another's consumers.
        "SERVICE_NAME": "products" + database_name,
        "OPENSEARCH_URL": opensearch_url,
        # One alias per test, so tests never see each other's documents.
        "SEARCH_INDEX": database_name,
    }


@pytest.fixture
async def start_products(
    serve: Callable[[Any], Awaitable[Client]], products_env: dict[str, str], tokens: TokenFactory
) -> Callable[..., Awaitable[Client]]:
    async def start(**overrides: str) -> Client:
        settings = load(ProductsSettings, {**products_env, **overrides})
        return await serve(create_app(settings, keys=tokens.keys()))

    return start


@pytest.fixture
async def client(start_products: Callable[..., Awaitable[Client]]) -> Client:
    return await start_products()


@pytest.fixture
async def engine(opensearch_url: str) -> AsyncIterator[AsyncOpenSearch]:
    """A search engine client for tests that talk to OpenSearch directly."""
    client = make_client(opensearch_url, timeout=10)
    try:
        yield client
    finally:
        await client.close()
