"""Typed app state of the products service shared by its packages."""

from __future__ import annotations

from typing import Any

from aiohttp import web

OPENAPI = web.AppKey("openapi", dict[str, Any])
