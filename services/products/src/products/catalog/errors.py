"""The situations the products service answers with, as the kit's problem types."""

from __future__ import annotations

from shopkit.problems import Conflict, NotFound, ValidationFailed
from shopkit.versions import StaleVersion

__all__ = [
    "CategoryCycle",
    "CategoryNotFound",
    "ProductNotFound",
    "SkuTaken",
    "SlugTaken",
    "StaleVersion",
]


class ProductNotFound(NotFound):
    slug, title = "product-not-found", "Product not found"


class CategoryNotFound(NotFound):
    slug, title = "category-not-found", "Category not found"


class SlugTaken(Conflict):
    slug, title = "slug-taken", "Slug already in use"


class SkuTaken(Conflict):
    slug, title = "sku-taken", "SKU already in use"


class CategoryCycle(ValidationFailed):
    slug, title = "category-cycle", "A category cannot move under itself"
