"""Typed app state of the users service."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from users.deps import Users

USERS = web.AppKey("users", Users)
OPENAPI = web.AppKey("openapi", dict[str, Any])
