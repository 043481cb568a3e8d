"""The MongoDB client lifecycle on PyMongo's async API (one client per app, created on the app's loop)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from pymongo import AsyncMongoClient

from shopkit.keys import DB, SETTINGS

__all__ = ["client", "mongo_ctx", "ping"]


def client(url: str) -> AsyncMongoClient:  # type: ignore[type-arg]
    # timeoutMS bounds every operation (client-side operation timeout), so no call can hang.
    return AsyncMongoClient(url, tz_aware=True, timeoutMS=5000, serverSelectionTimeoutMS=5000)


async def mongo_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    mongo = client(settings.mongo_url.value)
    app[DB] = mongo[settings.database]
    try:
        yield
    finally:
        await mongo.close()


async def ping(app: web.Application) -> None:
    await app[DB].command("ping")
