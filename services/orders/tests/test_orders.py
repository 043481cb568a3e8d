"""The orders service on loopback against this test's own database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from orders.app import create_app
from orders.settings import OrdersSettings
from shopkit.settings import load

Serve = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


async def test_the_service_answers_that_it_is_alive(
    serve: Serve, service_env: dict[str, str]
) -> None:
    client = await serve(create_app(load(OrdersSettings, service_env)))

    response = await client.get("/healthz")

    assert response.status == 200
