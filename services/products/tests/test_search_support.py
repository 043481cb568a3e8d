"""Helpers shared by the search tests: a small catalog of Product values and an index built from it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from multidict import MultiDict
from opensearchpy import AsyncOpenSearch

from products.model import AttributeValue, Product, ProductStatus, Variant
from products.search.rebuild import rebuild
from products.search.schemas import search_params
from products.search.service import SearchService
from shopkit.money import Money

START = datetime(2026, 1, 1, tzinfo=UTC)


def variant(
    sku: str,
    amount: int,
    *,
    track_stock: bool = True,
    published: bool = True,
    **attributes: AttributeValue,
) -> Variant:
    return Variant(
        sku=sku,
        price=Money(amount, "EUR"),
        attributes=dict(attributes),
        track_stock=track_stock,
        published=published,
    )


def product(
    number: int,
    name: str,
    *variants: Variant,
    brand: str | None = None,
    category: tuple[str, ...] = (),
    description: str = "",
    status: ProductStatus = ProductStatus.PUBLISHED,
    version: int = 1,
    **attributes: AttributeValue,
) -> Product:
    # Ids in creation order: product 1 is the oldest.
    created = START + timedelta(days=number)
    return Product(
        id=f"p{number:03d}",
        slug=f"product-{number}",
        name=name,
        status=status,
        variants=variants,
        version=version,
        created_at=created,
        updated_at=created,
        description=description,
        brand=brand,
        category_id=category[-1] if category else None,
        category_path=category,
        attributes=dict(attributes),
    )


PHONES = ("electronics", "phones")
LAPTOPS = ("electronics", "laptops")
TABLETS = ("electronics", "tablets")
AUDIO = ("electronics", "audio")
BAGS = ("fashion", "bags")

CATALOG: list[Product] = [
    product(
        1,
        "Apple iPhone 15",
        variant("IP15-128-BLK", 79900, colour="black", storage=128),
        variant("IP15-256-BLU", 89900, colour="blue", storage=256),
        brand="Apple",
        category=PHONES,
        description="A phone with a very good camera.",
        material="aluminium",
    ),
    product(
        2,
        "Apple MacBook Air",
        variant("MBA-13-SLV", 129900, colour="silver"),
        brand="Apple",
        category=LAPTOPS,
        description="A thin laptop for travel.",
    ),
    product(
        3,
        "Samsung Galaxy S24",
        variant("S24-BLK", 84900, colour="black", storage=256),
        brand="Samsung",
        category=PHONES,
        description="An Android phone with a bright screen.",
    ),
    product(
        4,
        "Samsung Galaxy Tab S9",
        variant("TAB-S9-GRY", 49900, colour="grey"),
        brand="Samsung",
        category=TABLETS,
        description="A tablet for drawing and films.",
    ),
    product(
        5,
        "Kånken Backpack",
        variant("KANKEN-RED", 8900, track_stock=False, colour="red"),
        variant("KANKEN-BLK", 8900, track_stock=False, colour="black"),
        brand="Fjällräven",
        category=BAGS,
        description="A square backpack made of Vinylon F, with room for a laptop.",
        material="vinylon",
    ),
    product(
        6,
        "Sony WH-1000XM5 Headphones",
        variant("WH1000XM5-BLK", 34900, colour="black"),
        brand="Sony",
        category=AUDIO,
        description="Noise cancelling headphones that go well with a phone.",
    ),
    product(
        7,
        "Google Pixel 8",
        variant("PIXEL8-GRN", 69900, colour="green", storage=128),
        variant("PIXEL8-HIDDEN", 99900, published=False, colour="gold", storage=512),
        brand="Google",
        category=PHONES,
        description="A phone by Google.",
    ),
    product(
        8,
        "Apple iPhone 17 prototype",
        variant("IP17-PROTO", 149900, colour="black"),
        brand="Apple",
        category=PHONES,
        status=ProductStatus.DRAFT,
    ),
]
VISIBLE = [p for p in CATALOG if p.visible]
STOCK: dict[str, int] = {
    "IP15-128-BLK": 5,
    "IP15-256-BLU": 0,
    "MBA-13-SLV": 2,
    "S24-BLK": 0,
    "TAB-S9-GRY": 1,
    "WH1000XM5-BLK": 0,
    "PIXEL8-GRN": 3,
    "PIXEL8-HIDDEN": 9,
    "IP17-PROTO": 9,
}


def in_stock(p: Product, stock: Mapping[str, int] = STOCK) -> bool:
    published = [v for v in p.variants if v.published]
    return any(not v.track_stock or stock.get(v.sku, 0) > 0 for v in published)


async def products_of(items: Iterable[Product]) -> AsyncIterator[Product]:
    for item in items:
        yield item


def availability_of(stock: Mapping[str, int]) -> Any:
    async def availability(skus: list[str]) -> dict[str, int]:
        return {sku: stock[sku] for sku in skus if sku in stock}

    return availability


def new_alias() -> str:
    return "t" + uuid.uuid4().hex[:12]


async def drop(engine: AsyncOpenSearch, alias: str) -> None:
    """Every index this test's alias created (its timestamped ones and the initial one)."""
    found = await engine.indices.get(index=f"{alias}-*", allow_no_indices=True)
    for name in found:
        await engine.indices.delete(index=name)


async def load(
    engine: AsyncOpenSearch,
    alias: str,
    items: Iterable[Product] = CATALOG,
    stock: Mapping[str, int] = STOCK,
) -> SearchService:
    await rebuild(engine, alias, products_of(items), availability_of(stock), grace=0)
    await warm(engine, alias)
    # No results cache: these tests look at the index right after changing it. The service's
    # own query timeout, so that a query slow on a warm index still fails the test.
    return SearchService(engine, alias, cache_seconds=0)


async def warm(engine: AsyncOpenSearch, alias: str) -> None:
    """Run each kind of query once on a new index, with time to spare.

    A new index's first fuzzy query and facets (loading its terms and ordinals) can outlast the
    service's 2 s query timeout on a busy node; a deployed index is warm long before customers ask.
    """
    patient = SearchService(engine, alias, timeout=30, cache_seconds=0)
    await patient.search(search_params(MultiDict({"q": "warm up", "sort": "price"})))
    await patient.search(search_params(MultiDict()))
    await patient.autocomplete("wa")


def names(page: Mapping[str, Any]) -> list[str]:
    return [item["name"] for item in page["items"]]


def counts(buckets: list[dict[str, Any]]) -> dict[Any, int]:
    return {bucket["value"]: bucket["count"] for bucket in buckets}
