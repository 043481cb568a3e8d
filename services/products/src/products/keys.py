"""Typed app state of the products service shared by its packages."""

from __future__ import annotations

from aiohttp import web

from products.settings import ProductsSettings

SETTINGS = web.AppKey("products.settings", ProductsSettings)
