"""Full reindex with no downtime: build a new index beside the live one, then swap the alias atomically.

While the new index is built, the `<alias>-next` alias names it, so the indexer writes every change
to it as well as to the live index. Changes made before that moment are in the catalog the rebuild
reads; changes after it reach the new index through the indexer; where both write, the guards
(see `index`) let the newest win. Searches keep hitting the complete old index until one `_aliases` call
points them at the complete new one. `python -m products.reindex` runs it on a deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opensearchpy import AsyncOpenSearch, NotFoundError

from products.model import Product
from products.search import index
from products.search.document import document
from products.search.errors import RebuildFailed, RebuildInProgress

log = logging.getLogger("products.search.rebuild")
Availability = Callable[[list[str]], Awaitable[Mapping[str, int]]]
BATCH = 500
BULK_TIMEOUT = 120
# Searches that resolved the alias to the old index just before the swap get to finish.
GRACE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Rebuilt:
    index: str
    count: int
    replaced: list[str]


async def rebuild(
    client: AsyncOpenSearch,
    alias: str,
    products: AsyncIterable[Product],
    availability: Availability,
    *,
    batch: int = BATCH,
    grace: float = GRACE_SECONDS,
    force: bool = False,
) -> Rebuilt:
    """Index every visible product of `products` into a new index and serve it under `alias`.

    `availability(skus)` answers the units available per tracked SKU. With `force`, an index left by
    a rebuild that crashed (or is still running elsewhere) is dropped instead of refusing to start.
    """
    building = index.next_alias(alias)
    leftovers = await index.indices_of(client, building)
    if leftovers and not force:
        raise RebuildInProgress(f"{building} names {', '.join(leftovers)}")
    for leftover in leftovers:
        await client.indices.delete(index=leftover, request_timeout=60)
    name = index.new_index_name(alias)
    await index.create_index(client, name, loading=True)
    try:
        # From here on the indexer writes every change to the new index too; only then is it safe
        # to read the catalog, so nothing changed in between is missed.
        await client.indices.update_aliases(
            body={"actions": [{"add": {"index": name, "alias": building}}]}, request_timeout=30
        )
        count = 0
        async for chunk in _chunks(products, batch):
            count += await _load(client, alias, name, chunk, availability)
        await index.finish_loading(client, name)
        replaced = await index.indices_of(client, alias)
        actions: list[dict[str, Any]] = [
            {"remove": {"index": old, "alias": alias}} for old in replaced
        ]
        actions += [
            {"add": {"index": name, "alias": alias}},
            {"remove": {"index": name, "alias": building}},
        ]
        # One call, one cluster-state change: a search sees the old index or the new one, never neither.
        await client.indices.update_aliases(body={"actions": actions}, request_timeout=30)
    except BaseException:
        with contextlib.suppress(Exception):
            await client.indices.delete(index=name, request_timeout=60)
        raise
    if replaced:
        await asyncio.sleep(grace)
        for old in replaced:
            await client.indices.delete(index=old, request_timeout=60)
    log.info("search index %s serves %d products under %s", name, count, alias)
    return Rebuilt(index=name, count=count, replaced=replaced)


async def _chunks(products: AsyncIterable[Product], size: int) -> AsyncIterator[list[Product]]:
    chunk: list[Product] = []
    async for product in products:
        chunk.append(product)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _load(
    client: AsyncOpenSearch, alias: str, name: str, chunk: list[Product], availability: Availability
) -> int:
    docs = {product.id: document(product) for product in chunk if product.visible}
    if not docs:
        return 0
    # The live index's stock sequence numbers first, availability second: the availability read is
    # then at least as new as the event each number stands for, and an older stock event delivered
    # late still loses to it.
    seqs = await _stock_seqs(client, alias, list(docs))
    levels = await availability([sku for doc in docs.values() for sku in doc["tracked"]])
    actions: list[dict[str, Any]] = []
    for product_id, doc in docs.items():
        known = seqs.get(product_id, {})
        seed = {
            sku: {"a": int(levels.get(sku, 0)), "s": known.get(sku, 0)} for sku in doc["tracked"]
        }
        actions += [
            {"update": {"_index": name, "_id": product_id, "retry_on_conflict": 5}},
            index.product_update(doc, seed),
        ]
    response = await client.bulk(body=actions, request_timeout=BULK_TIMEOUT)
    if response["errors"]:
        failed = next(item["update"] for item in response["items"] if "error" in item["update"])
        raise RebuildFailed(f"bulk load into {name} failed: {failed['error']}")
    return len(docs)


async def _stock_seqs(
    client: AsyncOpenSearch, alias: str, ids: list[str]
) -> dict[str, dict[str, int]]:
    try:
        response = await client.mget(
            index=alias, body={"ids": ids}, _source_includes="stock", request_timeout=30
        )
    except NotFoundError:  # the first build: there is no live index yet
        return {}
    found: dict[str, dict[str, int]] = {}
    for doc in response["docs"]:
        stock = (doc.get("_source") or {}).get("stock") or {}
        found[doc["_id"]] = {sku: int(level["s"]) for sku, level in stock.items()}
    return found
