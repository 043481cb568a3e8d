"""The MongoDB client lifecycle on PyMongo's async API (one client per app, created on the app's loop),
and inserts that only a first writer wins."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from aiohttp import web
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from shopkit.keys import DB, SETTINGS

__all__ = ["client", "insert_new", "mongo_ctx", "ping"]

DUPLICATE_KEY = 11000


# Connections one process opens to the database at most, unless its URL says (`maxPoolSize=`).
# An instance is one event loop whose operations are short: past this many at once they queue in
# the process, bounded by timeoutMS, instead of inside the database. A flash sale of 500 buyers
# against PyMongo's default of 100 per process wedged FerretDB's PostgreSQL pool for good.
POOL_SIZE = 8


def client(url: str) -> AsyncMongoClient:  # type: ignore[type-arg]
    # timeoutMS bounds every operation (client-side operation timeout), so no call can hang.
    pool: dict[str, Any] = {} if "maxpoolsize=" in url.lower() else {"maxPoolSize": POOL_SIZE}
    return AsyncMongoClient(
        url, tz_aware=True, timeoutMS=5000, serverSelectionTimeoutMS=5000, **pool
    )


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


async def insert_new(
    collection: AsyncCollection[Any], documents: Sequence[Mapping[str, Any]]
) -> set[Any]:
    """Insert each document whose `_id` is not taken, in one command; the ids inserted now.

    The claim of a unique id is the one arbiter two instances share (FerretDB's conditional
    updates are not atomic). Sent in `_id` order: FerretDB runs an `insert_many` as one
    transaction, and two instances inserting overlapping ids in opposite orders would deadlock.
    Any error but a taken id is raised.
    """
    if not documents:
        return set()
    ordered = sorted((dict(d) for d in documents), key=lambda d: str(d["_id"]))
    lost: set[int] = set()
    try:
        await collection.insert_many(ordered, ordered=False)
    except BulkWriteError as error:
        for failed in error.details.get("writeErrors", []):
            if failed.get("code") != DUPLICATE_KEY:
                raise
            lost.add(int(failed["index"]))
    return {document["_id"] for index, document in enumerate(ordered) if index not in lost}
