"""Typed app state of search."""

from __future__ import annotations

from aiohttp import web

from products.search.service import SearchService

SEARCH = web.AppKey("search", SearchService)
