"""Typed app state of the catalog."""

from __future__ import annotations

from aiohttp import web

from products.catalog.categories import Categories
from products.catalog.service import Catalog

CATALOG = web.AppKey("catalog", Catalog)
CATEGORIES = web.AppKey("categories", Categories)
