"""A deterministic demo catalog: a category tree, thousands of products with variants, prices and stock."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SEED = 20261124

TREE: dict[str, list[str]] = {
    "Electronics": ["Phones", "Laptops", "Headphones", "Cameras", "Smart Home"],
    "Home & Kitchen": ["Cookware", "Furniture", "Lighting", "Bedding"],
    "Fashion": ["Jackets", "Shoes", "Shirts", "Bags", "Watches"],
    "Sports & Outdoors": ["Running", "Cycling", "Camping", "Fitness"],
    "Toys & Games": ["Board Games", "Puzzles", "Building Sets"],
    "Beauty": ["Skincare", "Fragrance", "Hair Care"],
    "Garden": ["Tools", "Plants", "Outdoor Furniture"],
    "Books": ["Fiction", "Cooking", "Travel"],
}
BRANDS = [
    "Aurora",
    "Borealis",
    "Cobalt",
    "Dune",
    "Ember",
    "Fjord",
    "Granite",
    "Halcyon",
    "Iris",
    "Juniper",
    "Kestrel",
    "Lumen",
    "Meridian",
    "Nimbus",
    "Orchid",
    "Pinnacle",
    "Quartz",
    "Rowan",
    "Sable",
    "Tundra",
]
ADJECTIVES = [
    "Classic",
    "Ultra",
    "Compact",
    "Pro",
    "Everyday",
    "Premium",
    "Lightweight",
    "Wireless",
    "Vintage",
    "Smart",
    "Eco",
    "Deluxe",
    "Urban",
    "Trail",
    "Studio",
    "Nordic",
    "Solar",
    "Silent",
    "Rapid",
    "Cozy",
]
COLOURS = ["black", "white", "blue", "red", "green", "grey", "silver", "navy", "beige", "orange"]
SIZES = ["XS", "S", "M", "L", "XL"]
MATERIALS = [
    "cotton",
    "wool",
    "leather",
    "steel",
    "aluminium",
    "bamboo",
    "glass",
    "oak",
    "linen",
    "polyester",
]


@dataclass(frozen=True, slots=True)
class DemoProduct:
    category: str  # the leaf category's slug
    body: dict[str, Any]  # a product as POST /api/v1/products takes it
    stock: dict[str, int]  # units to receive per SKU


def slugify(text: str) -> str:
    return "-".join("".join(ch if ch.isalnum() else " " for ch in text.lower()).split())


def categories() -> list[tuple[str, str, str | None]]:
    """(slug, name, parent slug), parents first."""
    found: list[tuple[str, str, str | None]] = []
    for root, children in TREE.items():
        found.append((slugify(root), root, None))
        found += [(slugify(f"{root} {child}"), child, slugify(root)) for child in children]
    return found


def products(count: int = 5000) -> Iterator[DemoProduct]:
    rng = random.Random(SEED)
    leaves = [
        (slugify(f"{root} {child}"), child) for root, children in TREE.items() for child in children
    ]
    for number in range(1, count + 1):
        leaf_slug, leaf_name = rng.choice(leaves)
        brand = rng.choice(BRANDS)
        noun = (
            leaf_name.rstrip("s")
            if leaf_name.endswith("s") and not leaf_name.endswith("ss")
            else leaf_name
        )
        name = f"{brand} {rng.choice(ADJECTIVES)} {noun} {rng.choice('ABCDEFGHJKLMNPRSTVXZ')}{rng.randint(10, 999)}"
        material = rng.choice(MATERIALS)
        base_price = rng.randrange(499, 150_000, 100)
        variants, stock = [], {}
        for index, colour in enumerate(rng.sample(COLOURS, rng.randint(1, 3))):
            sku = f"SKU-{number:05d}-{index + 1}"
            attributes: dict[str, Any] = {"colour": colour}
            if leaf_slug.startswith(("fashion", "sports")):
                attributes["size"] = rng.choice(SIZES)
            price = base_price + index * 500
            variant: dict[str, Any] = {
                "sku": sku,
                "price": {"amount": price, "currency": "EUR"},
                "attributes": attributes,
            }
            if rng.random() < 0.2:
                variant["compare_at_price"] = {
                    "amount": price + rng.randrange(500, 5000, 100),
                    "currency": "EUR",
                }
            variants.append(variant)
            stock[sku] = 0 if rng.random() < 0.1 else rng.randint(1, 120)
        body = {
            "slug": f"{slugify(name)}-{number}",
            "name": name,
            "description": f"The {name} in {material}: {rng.choice(ADJECTIVES).lower()} design, "
            f"made for {leaf_name.lower()} lovers. Demo item number {number}.",
            "brand": brand,
            "attributes": {"material": material},
            "images": [f"https://images.example.com/demo/{number}.jpg"],
            "status": "published" if rng.random() < 0.97 else "draft",
            "variants": variants,
        }
        yield DemoProduct(category=leaf_slug, body=body, stock=stock)
