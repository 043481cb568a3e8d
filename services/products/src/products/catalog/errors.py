"""The situations the products service answers with, as the kit's problem types."""

from __future__ import annotations

from shopkit.problems import Conflict, NotFound, PreconditionFailed, Problem, ValidationFailed


class ProductNotFound(NotFound):
    slug, title = "product-not-found", "Product not found"


class CategoryNotFound(NotFound):
    slug, title = "category-not-found", "Category not found"


class SlugTaken(Conflict):
    slug, title = "slug-taken", "Slug already in use"


class SkuTaken(Conflict):
    slug, title = "sku-taken", "SKU already in use"


class StaleVersion(PreconditionFailed):
    slug, title = "stale-version", "The resource changed since you read it"


class PreconditionRequired(Problem):
    status, slug, title = 428, "precondition-required", "If-Match required"


class CategoryCycle(ValidationFailed):
    slug, title = "category-cycle", "A category cannot move under itself"
