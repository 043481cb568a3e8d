"""The search service: writes product and stock changes to the index, answers searches and lists."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from multidict import MultiMapping
from opensearchpy import (
    AsyncOpenSearch,
    ConnectionError,
    NotFoundError,
    RequestError,
    TransportError,
)

from products.model import Product
from products.search import index, query, schemas
from products.search.document import indexed
from products.search.errors import SearchUnavailable
from products.search.query import SearchParams
from products.search.recent import Recent
from shopkit.problems import ValidationFailed

log = logging.getLogger("products.search")
QUERY_TIMEOUT = 2.0
WRITE_TIMEOUT = 10.0
STARTUP_SECONDS = 5.0
# Identical searches within this many seconds share one engine query (see `recent`).
CACHE_SECONDS = 1.0
# Enough keep-alive connections for the benchmark's 32 concurrent clients, with headroom.
POOL_SIZE = 64


def make_client(url: str, timeout: float = QUERY_TIMEOUT) -> AsyncOpenSearch:
    """An async client that fails fast: one retry on a refused connection, none on a timeout."""
    return AsyncOpenSearch(
        hosts=[url], timeout=timeout, max_retries=1, retry_on_timeout=False, pool_maxsize=POOL_SIZE
    )


class IndexingFailed(RuntimeError):
    """The engine refused a write for a reason other than being unreachable."""


class SearchService:
    """Everything the service asks of the search engine; callers see problems, never client errors."""

    def __init__(
        self,
        client: AsyncOpenSearch,
        alias: str,
        *,
        timeout: float = QUERY_TIMEOUT,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self.client, self.alias, self.timeout = client, alias, timeout
        self._recent: Recent[Any] = Recent(cache_seconds)

    # --- writes (the indexer's)

    async def ensure_index(self) -> None:
        """Create an empty index under the alias if there is none (a fresh deployment)."""
        async with self._engine(WRITE_TIMEOUT * 3):
            if await index.ensure_alias(self.client, self.alias):
                log.info("created an empty search index under alias %s", self.alias)

    async def index_product(self, product: Product) -> None:
        """Index a product snapshot (a tombstone if customers cannot see it) unless a newer one is there."""
        await self._write(product.id, index.product_update(indexed(product)))

    async def update_stock(self, product_id: str, sku: str, available: int, seq: int) -> None:
        """Record a SKU's availability after its stock event number `seq`, and the product's in_stock."""
        await self._write(product_id, index.stock_update(sku, available, seq))

    async def _write(self, doc_id: str, body: dict[str, Any], *, first: bool = True) -> None:
        # To the live index and, while a rebuild runs, to the one being built: `require_alias`
        # keeps the engine from auto-creating an index named like the alias that is not there.
        targets = [self.alias, index.next_alias(self.alias)]
        actions: list[dict[str, Any]] = []
        for target in targets:
            meta = {"_index": target, "_id": doc_id, "retry_on_conflict": 5, "require_alias": True}
            actions += [{"update": meta}, body]
        async with self._engine(WRITE_TIMEOUT):
            response = await self.client.bulk(body=actions, request_timeout=WRITE_TIMEOUT)
        live, building = (item["update"] for item in response["items"])
        if _missing(live) and first:
            await self.ensure_index()
            return await self._write(doc_id, body, first=False)
        for item in (live, building):
            if "error" in item and not (item is building and _missing(item)):
                raise IndexingFailed(f"{item.get('_index')}: {item['error']}")

    # --- reads

    async def search(self, params: SearchParams) -> dict[str, Any]:
        """Matching products with facets, highlights, a total and the next cursor (do not mutate)."""
        found: dict[str, Any] = await self._recent.get(
            ("search", params), lambda: self._find(params)
        )
        return found

    async def _find(self, params: SearchParams) -> dict[str, Any]:
        response = await self._search(query.search_body(params))
        items, next_cursor = query.read_page(response, params)
        return {
            "items": items,
            "next_cursor": next_cursor,
            "total": response["hits"]["total"]["value"],
            "facets": query.read_facets(response["aggregations"], params.filters),
        }

    async def list_products(
        self, params: SearchParams | MultiMapping[str] | Mapping[str, str]
    ) -> dict[str, Any]:
        """The customers' filtered product list (a raw query string is validated here: 422 if bad)."""
        if not isinstance(params, SearchParams):
            params = schemas.list_params(params)
        found: dict[str, Any] = await self._recent.get(("list", params), lambda: self._list(params))
        return found

    async def _list(self, params: SearchParams) -> dict[str, Any]:
        response = await self._search(query.list_body(params))
        items, next_cursor = query.read_page(response, params)
        return {"items": items, "next_cursor": next_cursor}

    async def autocomplete(self, prefix: str, limit: int = 10) -> list[dict[str, str]]:
        """Up to `limit` distinct product names completing what was typed so far."""
        found: list[dict[str, str]] = await self._recent.get(
            ("suggest", prefix, limit), lambda: self._suggest(prefix, limit)
        )
        return found

    async def _suggest(self, prefix: str, limit: int) -> list[dict[str, str]]:
        response = await self._search(query.suggest_body(prefix, limit * 2))
        found: dict[str, dict[str, str]] = {}
        for hit in response["hits"]["hits"]:
            source = hit["_source"]
            found.setdefault(
                source["name"].casefold(), {k: source[k] for k in ("id", "slug", "name")}
            )
        return list(found.values())[:limit]

    async def health(self) -> bool:
        """Whether the engine answers and the alias exists (not a readiness check: the catalog works without)."""
        try:
            async with self._engine(self.timeout):
                return bool(await self.client.indices.exists_alias(name=self.alias))
        except SearchUnavailable:
            return False

    async def refresh(self) -> None:
        """Make every write searchable now (tests; production relies on the 1 s refresh interval)."""
        async with self._engine(WRITE_TIMEOUT):
            await self.client.indices.refresh(index=self.alias)

    async def _search(self, body: dict[str, Any]) -> Any:
        try:
            async with self._engine(self.timeout):
                return await self.client.search(
                    index=self.alias, body=body, request_timeout=self.timeout
                )
        except RequestError as error:
            # Our parameters are validated; what still fails is a client's doctored cursor.
            log.warning("the search engine refused a query: %s", error)
            raise ValidationFailed("the search engine refused these parameters") from None

    @contextlib.asynccontextmanager
    async def _engine(self, seconds: float) -> AsyncIterator[None]:
        """Engine failures as problems: unreachable, slow, overloaded or index missing is a 503."""
        try:
            # The client's own timeout covers the HTTP exchange; this one covers everything else.
            async with asyncio.timeout(seconds + 1):
                yield
        except (ConnectionError, TimeoutError) as error:
            raise SearchUnavailable("the search engine is unreachable") from error
        except NotFoundError as error:
            raise SearchUnavailable("the search index does not exist yet") from error
        except TransportError as error:
            if isinstance(error.status_code, int) and (
                error.status_code >= 500 or error.status_code == 429
            ):
                raise SearchUnavailable("the search engine is failing") from error
            raise


def _missing(item: Mapping[str, Any]) -> bool:
    error = item.get("error")
    return isinstance(error, dict) and error.get("type") == "index_not_found_exception"
