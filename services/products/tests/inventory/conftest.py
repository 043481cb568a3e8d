"""Fixtures of the inventory tests: instances of the inventory app on one database, and staff verbs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from products_support import Roles
from test_inventory_support import Client, Start, Stock, starter

from shopkit.testing.tokens import TokenFactory


@pytest.fixture
def start(
    serve: Callable[[Any], Awaitable[Client]], service_env: dict[str, str], tokens: TokenFactory
) -> Start:
    return starter(serve, service_env, tokens)


@pytest.fixture
async def stock(start: Start, roles: Roles) -> Stock:
    return Stock(await start(), roles)
