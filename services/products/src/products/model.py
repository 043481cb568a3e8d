"""The catalog's values: categories, products and their variants (SKUs)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from shopkit.clock import rfc3339
from shopkit.money import Money

AttributeValue = str | int | float | bool


class ProductStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class Variant:
    sku: str
    price: Money
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    compare_at_price: Money | None = None
    weight_grams: int | None = None
    track_stock: bool = True
    published: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "attributes": self.attributes,
            "price": self.price.to_json(),
            "compare_at_price": self.compare_at_price.to_json() if self.compare_at_price else None,
            "weight_grams": self.weight_grams,
            "track_stock": self.track_stock,
            "published": self.published,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Variant:
        compare = data.get("compare_at_price")
        return cls(
            sku=data["sku"],
            price=Money(**data["price"]),
            attributes=dict(data.get("attributes") or {}),
            compare_at_price=Money(**compare) if compare else None,
            weight_grams=data.get("weight_grams"),
            track_stock=data.get("track_stock", True),
            published=data.get("published", True),
        )


@dataclass(frozen=True, slots=True)
class Product:
    """One product as its stream's latest `product.changed` event describes it; `version` is that seq."""

    id: str
    slug: str
    name: str
    status: ProductStatus
    variants: tuple[Variant, ...]
    version: int
    created_at: datetime
    updated_at: datetime
    description: str = ""
    brand: str | None = None
    category_id: str | None = None
    # The category and its ancestors, root first: filtering by a category matches its descendants.
    category_path: tuple[str, ...] = ()
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    images: tuple[str, ...] = ()
    updated_by: str | None = None

    @property
    def visible(self) -> bool:
        """Customers see published products that have at least one published variant."""
        return self.status == ProductStatus.PUBLISHED and any(v.published for v in self.variants)

    @property
    def etag(self) -> str:
        return f'"v{self.version}"'

    def variant(self, sku: str) -> Variant | None:
        return next((v for v in self.variants if v.sku == sku), None)

    def with_changes(self, **changes: Any) -> Product:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "description": self.description,
            "brand": self.brand,
            "category_id": self.category_id,
            "category_path": list(self.category_path),
            "attributes": self.attributes,
            "images": list(self.images),
            "status": self.status.value,
            "variants": [v.to_json() for v in self.variants],
            "version": self.version,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "updated_by": self.updated_by,
        }

    def public(self, staff: bool = False) -> dict[str, Any]:
        """What a client sees: customers only the published variants and no audit fields."""
        document = self.to_json()
        if not staff:
            document["variants"] = [v.to_json() for v in self.variants if v.published]
            document.pop("updated_by")
        return document

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Product:
        return cls(
            id=data["id"],
            slug=data["slug"],
            name=data["name"],
            description=data.get("description") or "",
            brand=data.get("brand"),
            category_id=data.get("category_id"),
            category_path=tuple(data.get("category_path") or ()),
            attributes=dict(data.get("attributes") or {}),
            images=tuple(data.get("images") or ()),
            status=ProductStatus(data["status"]),
            variants=tuple(Variant.from_json(v) for v in data["variants"]),
            version=data["version"],
            created_at=datetime.fromisoformat(data["created_at"].replace("Z", "+00:00")),
            updated_at=datetime.fromisoformat(data["updated_at"].replace("Z", "+00:00")),
            updated_by=data.get("updated_by"),
        )


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    slug: str
    name: str
    parent_id: str | None
    position: int
    archived: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "parent_id": self.parent_id,
            "position": self.position,
            "archived": self.archived,
        }
