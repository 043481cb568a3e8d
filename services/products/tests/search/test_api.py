"""The search endpoints over HTTP: results, 422 for bad parameters, 503 when the engine is down."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from opensearchpy import AsyncOpenSearch
from test_search_support import VISIBLE, drop, load, new_alias

from products.search import routes
from products.search.keys import SEARCH
from products.search.service import SearchService, make_client
from products.settings import ProductsSettings
from shopkit.app import build_app
from shopkit.pagination import encode_cursor
from shopkit.settings import Secret
from shopkit.testing.peers import free_port

Client = TestClient[Any, Any]
Serve = Callable[[web.Application], Awaitable[Client]]


def search_app(service: SearchService) -> web.Application:
    """The kit's middlewares and the search routes, without the catalog, database or broker."""
    settings = ProductsSettings(mongo_url=Secret("mongodb://127.0.0.1:1/"), log_level="WARNING")
    app = build_app(settings, database=False, events=False)
    app[SEARCH] = service
    app.router.add_routes(routes.routes)
    return app


@pytest.fixture
async def client(engine: AsyncOpenSearch, serve: Serve) -> AsyncIterator[Client]:
    alias = new_alias()
    try:
        yield await serve(search_app(await load(engine, alias)))
    finally:
        await drop(engine, alias)


@pytest.fixture
async def down(serve: Serve) -> AsyncIterator[Client]:
    dead = make_client(f"http://127.0.0.1:{free_port()}")
    try:
        yield await serve(search_app(SearchService(dead, "products")))
    finally:
        await dead.close()


async def test_search_answers_items_facets_and_a_cursor(client: Client) -> None:
    response = await client.get("/api/v1/search", params={"q": "iphnoe", "limit": "1"})

    assert response.status == 200
    body = await response.json()
    assert body["items"][0]["name"] == "Apple iPhone 15"
    assert set(body) == {"items", "next_cursor", "total", "facets"}
    assert set(body["facets"]) == {"category", "brand", "attributes", "price", "in_stock"}


async def test_attribute_filters_and_repeated_values_over_http(client: Client) -> None:
    response = await client.get(
        "/api/v1/search?attr.colour=black&attr.colour=green&brand=Google&brand=Sony"
    )

    body = await response.json()
    assert sorted(item["name"] for item in body["items"]) == [
        "Google Pixel 8",
        "Sony WH-1000XM5 Headphones",
    ]


async def test_autocomplete_answers_suggestions(client: Client) -> None:
    response = await client.get("/api/v1/search/autocomplete", params={"q": "sams"})

    assert response.status == 200
    assert {s["name"] for s in (await response.json())["suggestions"]} == {
        "Samsung Galaxy S24",
        "Samsung Galaxy Tab S9",
    }


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/search?limit=1000", "limit"),
        ("/api/v1/search?limit=0", "limit"),
        ("/api/v1/search?sort=bogus", "sort"),
        ("/api/v1/search?min_price=abc", "min_price"),
        ("/api/v1/search?min_price=-1", "min_price"),
        ("/api/v1/search?min_price=500&max_price=100", "min_price"),
        ("/api/v1/search?in_stock=maybe", "in_stock"),
        ("/api/v1/search?colour=red", "colour"),
        ("/api/v1/search?attributes=x", "attributes"),
        ("/api/v1/search?limit=1&limit=2", "limit"),
        ("/api/v1/search?cursor=!!!", "cursor"),
        # A cursor of another sort, one with the wrong value types, one that is not ours at all.
        ("/api/v1/search?cursor=" + encode_cursor({"sort": "price", "after": [1, "p"]}), "cursor"),
        (
            "/api/v1/search?sort=price&cursor="
            + encode_cursor({"sort": "price", "after": ["x", "p"]}),
            "cursor",
        ),
        ("/api/v1/search?cursor=" + encode_cursor([1, 2]), "cursor"),
        ("/api/v1/search?q=" + "x" * 201, "q"),
        ("/api/v1/search/autocomplete", "q"),
        ("/api/v1/search/autocomplete?q=ab&limit=11", "limit"),
        ("/api/v1/search/autocomplete?q=ab&brand=x", "brand"),
    ],
)
async def test_bad_parameters_get_a_422_problem(client: Client, path: str, field: str) -> None:
    response = await client.get(path)

    assert response.status == 422
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["status"] == 422
    assert field in str(body["errors"])


async def test_a_down_engine_answers_a_503_problem_quickly(down: Client) -> None:
    started = time.monotonic()
    search = await down.get("/api/v1/search", params={"q": "phone"})
    suggest = await down.get("/api/v1/search/autocomplete", params={"q": "ph"})

    assert time.monotonic() - started < 3
    for response in (search, suggest):
        assert response.status == 503
        assert response.content_type == "application/problem+json"
        assert response.headers["Retry-After"] == "5"
        body = await response.json()
        assert body["type"].endswith("/search-unavailable")
        assert "unreachable" in body["detail"]


async def test_bad_parameters_get_422_even_while_the_engine_is_down(down: Client) -> None:
    response = await down.get("/api/v1/search", params={"limit": "1000"})

    assert response.status == 422


async def test_the_total_counts_every_visible_product(client: Client) -> None:
    response = await client.get("/api/v1/search")

    assert (await response.json())["total"] == len(VISIBLE)
