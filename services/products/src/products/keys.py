"""Typed app state of the products service."""

from __future__ import annotations

from aiohttp import web

from products.catalog import Catalog
from products.categories import Categories
from products.settings import ProductsSettings

CATALOG = web.AppKey("catalog", Catalog)
CATEGORIES = web.AppKey("categories", Categories)
SETTINGS = web.AppKey("products.settings", ProductsSettings)
