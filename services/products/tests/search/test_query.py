"""Search behaviour against a real OpenSearch node: typos, facets, filters, sorting, paging, highlights."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from multidict import MultiDict
from opensearchpy import AsyncOpenSearch
from test_search_support import (
    CATALOG,
    STOCK,
    VISIBLE,
    counts,
    drop,
    in_stock,
    load,
    names,
    new_alias,
)

from products.search.schemas import list_params, search_params
from products.search.service import SearchService


@pytest.fixture
async def search(engine: AsyncOpenSearch) -> AsyncIterator[SearchService]:
    alias = new_alias()
    try:
        yield await load(engine, alias)
    finally:
        await drop(engine, alias)


async def find(search: SearchService, *pairs: tuple[str, str], **query: str) -> dict[str, Any]:
    return await search.search(search_params(MultiDict([*pairs, *query.items()])))


async def test_a_misspelt_name_finds_the_product(search: SearchService) -> None:
    found = await find(search, q="iphnoe")

    assert names(found)[0] == "Apple iPhone 15"


async def test_folding_finds_accented_words_typed_without_accents(search: SearchService) -> None:
    found = await find(search, q="kanken fjallraven")

    assert names(found) == ["Kånken Backpack"]


async def test_the_name_outranks_the_description(search: SearchService) -> None:
    # Only the backpack's description mentions a laptop.
    found = await find(search, q="laptop")

    assert names(found)[0] == "Apple MacBook Air"
    assert set(names(found)) == {"Apple MacBook Air", "Kånken Backpack"}


async def test_drafts_and_hidden_variants_are_not_searchable(search: SearchService) -> None:
    everything = await find(search, limit="100")

    assert sorted(names(everything)) == sorted(p.name for p in VISIBLE)
    assert everything["total"] == len(VISIBLE)
    assert "gold" not in counts(everything["facets"]["attributes"]["colour"])


async def test_facet_counts_equal_the_number_of_matching_documents(search: SearchService) -> None:
    found = await find(search)
    facets = found["facets"]

    assert counts(facets["brand"]) == Counter(p.brand for p in VISIBLE)
    assert counts(facets["category"]) == Counter(c for p in VISIBLE for c in p.category_path)
    colours = Counter(
        colour
        for p in VISIBLE
        for colour in {v.attributes["colour"] for v in p.variants if v.published}
    )
    assert counts(facets["attributes"]["colour"]) == colours
    assert counts(facets["in_stock"]) == Counter(in_stock(p) for p in VISIBLE)
    prices = {b["key"]: b["count"] for b in facets["price"] if b["count"]}
    assert sum(prices.values()) == len(VISIBLE)
    assert prices["5000-10000"] == 1  # the backpack, from 89.00
    # And each bucket is what selecting it returns.
    for brand, count in counts(facets["brand"]).items():
        assert (await find(search, brand=brand))["total"] == count
    for colour, count in counts(facets["attributes"]["colour"]).items():
        assert (await find(search, ("attr.colour", colour)))["total"] == count


async def test_facet_counts_follow_the_text_query(search: SearchService) -> None:
    found = await find(search, q="phone", limit="100")

    # Not an empty answer that would make every check below hold: the phones are found.
    phones = {p.name for p in VISIBLE if "phones" in p.category_path}
    assert phones
    assert phones <= set(names(found))
    by_brand = counts(found["facets"]["brand"])
    assert (
        sum(by_brand.values())
        == found["total"]
        == sum(1 for item in found["items"] if item["brand"])
    )
    for brand, count in by_brand.items():
        assert (await find(search, ("q", "phone"), brand=brand))["total"] == count


async def test_selecting_a_brand_keeps_the_other_brands_counts(search: SearchService) -> None:
    everything = await find(search)

    apple = await find(search, brand="Apple")

    # The hits and every other facet narrow to Apple...
    assert sorted(names(apple)) == ["Apple MacBook Air", "Apple iPhone 15"]
    assert counts(apple["facets"]["category"]) == {"electronics": 2, "phones": 1, "laptops": 1}
    # ...while the brand facet still offers the other brands with their full counts.
    assert counts(apple["facets"]["brand"]) == counts(everything["facets"]["brand"])


async def test_two_selected_facets_each_count_under_the_other(search: SearchService) -> None:
    found = await find(search, brand="Apple", category="phones")

    assert names(found) == ["Apple iPhone 15"]
    # Brands among phones, and categories among Apple products.
    assert counts(found["facets"]["brand"]) == {"Apple": 1, "Samsung": 1, "Google": 1}
    assert counts(found["facets"]["category"]) == {"electronics": 2, "phones": 1, "laptops": 1}


async def test_several_values_of_one_facet_are_alternatives(search: SearchService) -> None:
    found = await find(search, ("brand", "Sony"), ("brand", "Google"))

    assert sorted(names(found)) == ["Google Pixel 8", "Sony WH-1000XM5 Headphones"]


async def test_a_category_matches_its_descendants(search: SearchService) -> None:
    found = await find(search, category="electronics", limit="100")

    assert found["total"] == sum("electronics" in p.category_path for p in VISIBLE)


async def test_price_range_and_attribute_filters(search: SearchService) -> None:
    cheap_black = await find(search, ("attr.colour", "black"), max_price="80000")
    large = await find(search, ("attr.storage", "256"), min_price="80000")
    in_range = await find(search, min_price="30000", max_price="70000")

    assert sorted(names(cheap_black)) == [
        "Apple iPhone 15",
        "Kånken Backpack",
        "Sony WH-1000XM5 Headphones",
    ]
    assert names(large) == ["Samsung Galaxy S24"]
    assert sorted(names(in_range)) == [
        "Google Pixel 8",
        "Samsung Galaxy Tab S9",
        "Sony WH-1000XM5 Headphones",
    ]
    # The colour facet under a colour filter still offers every colour of the price range.
    assert "grey" in counts(cheap_black["facets"]["attributes"]["colour"])


async def test_in_stock_filter(search: SearchService) -> None:
    found = await find(search, in_stock="true", limit="100")

    assert sorted(names(found)) == sorted(p.name for p in VISIBLE if in_stock(p))
    assert all(item["in_stock"] for item in found["items"])


async def test_sort_by_price(search: SearchService) -> None:
    cheapest_first = await find(search, sort="price", limit="100")
    dearest_first = await find(search, sort="-price", limit="100")

    def lowest(item: dict[str, Any]) -> int:
        return min(v["price"]["amount"] for v in item["variants"])

    ascending = [lowest(item) for item in cheapest_first["items"]]
    assert len(ascending) == len(VISIBLE)
    assert ascending == sorted(ascending)
    assert [lowest(item) for item in dearest_first["items"]] == sorted(ascending, reverse=True)


async def test_sort_by_name_and_newest(search: SearchService) -> None:
    by_name = await find(search, sort="name", limit="100")
    newest = await find(search, sort="newest", limit="100")

    assert names(by_name) == sorted((p.name for p in VISIBLE), key=str.casefold)
    assert [item["id"] for item in newest["items"]] == sorted((p.id for p in VISIBLE), reverse=True)


@pytest.mark.parametrize("sort", ["relevance", "price", "-price", "newest", "name"])
async def test_search_after_pagination_returns_every_document_once(
    search: SearchService, sort: str
) -> None:
    # Relevance pages through scored hits (with ties), the others through everything.
    query = {"sort": sort, "limit": "2", **({"q": "phone"} if sort == "relevance" else {})}
    seen: list[str] = []
    while True:
        page = await find(search, **query)
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        query["cursor"] = page["next_cursor"]

    assert len(seen) == len(set(seen)) == page["total"]
    assert page["total"] >= 4


async def test_the_customer_list_pages_through_filtered_products(search: SearchService) -> None:
    seen: list[str] = []
    query: dict[str, str] = {"category": "electronics", "sort": "price", "limit": "2"}
    while True:
        page = await search.list_products(list_params(MultiDict(query)))
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        query["cursor"] = page["next_cursor"]

    expected = sorted(
        (p for p in VISIBLE if "electronics" in p.category_path),
        key=lambda p: (min(v.price.amount for v in p.variants if v.published), p.id),
    )
    assert seen == [p.id for p in expected]
    assert set(page) == {"items", "next_cursor"}


async def test_list_items_are_the_public_products_with_stock(search: SearchService) -> None:
    page = await search.list_products(MultiDict({"brand": "Google"}))

    [item] = page["items"]
    pixel = next(p for p in CATALOG if p.brand == "Google")
    assert item == {**pixel.public(), "in_stock": STOCK["PIXEL8-GRN"] > 0}


async def test_highlights_mark_the_matched_words(search: SearchService) -> None:
    found = await find(search, q="camera")

    [item] = found["items"]
    assert "<em>camera</em>" in item["highlights"]["description"]


async def test_highlights_escape_the_product_text(engine: AsyncOpenSearch) -> None:
    from test_search_support import product, variant

    alias = new_alias()
    try:
        search = await load(
            engine, alias, [product(1, "Cable <b>USB-C</b>", variant("C1", 900))], {}
        )
        found = await find(search, q="cable")
    finally:
        await drop(engine, alias)

    assert found["items"][0]["highlights"]["name"] == "<em>Cable</em> &lt;b&gt;USB-C&lt;&#x2F;b&gt;"


async def test_autocomplete_completes_a_prefix(search: SearchService) -> None:
    galaxy = await search.autocomplete("samsung gal")
    i = await search.autocomplete("ip")

    assert sorted(s["name"] for s in galaxy) == ["Samsung Galaxy S24", "Samsung Galaxy Tab S9"]
    assert [s["name"] for s in i] == ["Apple iPhone 15"]
    assert set(galaxy[0]) == {"id", "slug", "name"}
