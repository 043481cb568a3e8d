"""Search's part of the app: the engine client and the indexer in `app[SEARCH]` for the app's life."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from products.keys import SETTINGS
from products.search import indexer
from products.search.errors import SearchUnavailable
from products.search.keys import SEARCH
from products.search.service import STARTUP_SECONDS, SearchService, make_client
from products.skus import SkuDirectory

log = logging.getLogger("products.search")


def search_context(
    skus: Callable[[web.Application], SkuDirectory],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx entry: the engine client and the indexer for the app's life, a down engine never
    stopping the service; `skus(app)` names the product of a SKU whose stock moved."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        # The client logs every request at INFO and every failure with a traceback; the request log
        # and our 503 problems already say it, and an outage must not flood the logs.
        logging.getLogger("opensearch").setLevel(logging.ERROR)
        client = make_client(settings.opensearch_url)
        service = SearchService(client, settings.search_index)
        app[SEARCH] = service
        try:
            try:
                # Bounded: an engine that hangs must not hold the whole service's startup.
                async with asyncio.timeout(STARTUP_SECONDS):
                    await service.ensure_index()
            except (SearchUnavailable, TimeoutError):
                log.warning(
                    "search engine unreachable at startup; indexing will catch up when it is back"
                )
            async for _ in indexer.consumer(service, settings.service_name, skus(app))(app):
                yield
        finally:
            await client.close()

    return context
