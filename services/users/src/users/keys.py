"""Typed app state of the users service."""

from __future__ import annotations

from aiohttp import web

from users.deps import Users

USERS = web.AppKey("users", Users)
