"""Typed app state of the products service."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from products.catalog import Catalog
from products.categories import Categories

CATALOG = web.AppKey("catalog", Catalog)
CATEGORIES = web.AppKey("categories", Categories)
OPENAPI = web.AppKey("openapi", dict[str, Any])
