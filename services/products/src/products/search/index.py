"""The product index: settings, mapping, update scripts, and the aliases that make rebuilds invisible.

Only the REST DSL that Elasticsearch 8+ and OpenSearch 2 share is used here. Clients query the alias
(`products`); a rebuild fills a new index `products-<timestamp>` that the `products-next` alias names
while it is being built, so the indexer writes every change to both, then swaps the alias in one
atomic `_aliases` call.

Every write is a scripted upsert guarded by a version: a product snapshot lands only if it is newer
than the stored one, and a SKU's availability only if its stock event's sequence number is newer.
Events may be redelivered in any order after an outage, and two writers (indexer and rebuild) may
race on one document; with these guards the newest state wins whatever the order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opensearchpy import AsyncOpenSearch, RequestError

from shopkit import clock

NEXT_SUFFIX = "-next"
# A longer keyword is kept in _source but not indexed: past Lucene's term limit a whole document
# would be refused, and nobody facets on a 300-character value.
KEYWORD_LIMIT = 256
INITIAL_SUFFIX = "-initial"

ANALYSIS: dict[str, Any] = {
    "analyzer": {
        # "iPhone", "IPHONE" and "Ïphone" all become "iphone".
        "folding": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["lowercase", "asciifolding"],
        }
    },
    "normalizer": {"folding": {"type": "custom", "filter": ["lowercase", "asciifolding"]}},
}

SETTINGS: dict[str, Any] = {
    "number_of_shards": 1,
    # A replica wherever a second node exists; a single dev node stays green.
    "auto_expand_replicas": "0-1",
    "analysis": ANALYSIS,
}

MAPPINGS: dict[str, Any] = {
    # Unknown fields are an error in a document we build ourselves, not a silent new mapping.
    "dynamic": "strict",
    "properties": {
        "id": {"type": "keyword"},
        "slug": {"type": "keyword", "index": False},
        "name": {
            "type": "text",
            "analyzer": "folding",
            "copy_to": "all_text",
            "fields": {
                "sort": {"type": "keyword", "normalizer": "folding", "ignore_above": KEYWORD_LIMIT},
                "suggest": {"type": "search_as_you_type", "analyzer": "folding"},
            },
        },
        "description": {"type": "text", "analyzer": "folding", "copy_to": "all_text"},
        "brand": {
            "type": "text",
            "analyzer": "folding",
            "copy_to": "all_text",
            "fields": {"keyword": {"type": "keyword", "ignore_above": KEYWORD_LIMIT}},
        },
        "category_id": {"type": "keyword"},
        "category_path": {"type": "keyword"},
        "attrs": {
            "type": "nested",
            "properties": {
                "name": {"type": "keyword", "ignore_above": KEYWORD_LIMIT},
                "value": {"type": "keyword", "ignore_above": KEYWORD_LIMIT},
            },
        },
        "attr_text": {"type": "text", "analyzer": "folding", "copy_to": "all_text"},
        # Every searchable word in one field: typo tolerance costs one fuzzy expansion per word
        # instead of one per word and field (the expansion is most of a fuzzy query's time).
        "all_text": {"type": "text", "analyzer": "folding"},
        "price_min": {"type": "long"},
        "price_max": {"type": "long"},
        "currency": {"type": "keyword"},
        "tracked": {"type": "keyword", "index": False, "doc_values": False},
        "untracked": {"type": "boolean", "index": False},
        "in_stock": {"type": "boolean"},
        "created_at": {"type": "date"},
        "updated_at": {"type": "date"},
        "version": {"type": "long"},
        "visible": {"type": "boolean"},
        # Kept in _source only: per-SKU availability with its event seq, and the public JSON we answer.
        "stock": {"type": "object", "enabled": False},
        "product": {"type": "object", "enabled": False},
    },
}

_IN_STOCK = """
boolean inStock = ctx._source.untracked == true;
if (!inStock && ctx._source.tracked != null) {
  for (def sku : ctx._source.tracked) {
    def held = ctx._source.stock[sku];
    if (held != null && held.a > 0) { inStock = true; break; }
  }
}
ctx._source.in_stock = inStock;
"""

# params.doc: the product (or tombstone); params.seed: availability to add for SKUs not yet known.
PRODUCT_SCRIPT = (
    """
Map stock = ctx._source.stock == null ? new HashMap() : ctx._source.stock;
boolean changed = false;
if (params.seed != null) {
  for (def entry : params.seed.entrySet()) {
    if (!stock.containsKey(entry.getKey())) { stock.put(entry.getKey(), entry.getValue()); changed = true; }
  }
}
if (ctx._source.version == null || ctx._source.version < params.doc.version) {
  ctx._source.clear();
  ctx._source.putAll(params.doc);
  changed = true;
}
if (!changed) { ctx.op = 'noop'; return; }
ctx._source.stock = stock;
"""
    + _IN_STOCK
)

# params.sku, params.available, params.seq (the SKU stream's seq of the stock event).
STOCK_SCRIPT = (
    """
if (ctx._source.stock == null) { ctx._source.stock = new HashMap(); }
def level = ctx._source.stock[params.sku];
if (level != null && level.s >= params.seq) { ctx.op = 'noop'; return; }
ctx._source.stock[params.sku] = ['a': params.available, 's': params.seq];
"""
    + _IN_STOCK
)


def next_alias(alias: str) -> str:
    return alias + NEXT_SUFFIX


def new_index_name(alias: str) -> str:
    return f"{alias}-{clock.now():%Y%m%d%H%M%S%f}"


def product_update(doc: Mapping[str, Any], seed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The body of a bulk `update` that writes a product snapshot unless a newer one is there."""
    return _upsert(PRODUCT_SCRIPT, {"doc": doc, "seed": seed})


def stock_update(sku: str, available: int, seq: int) -> dict[str, Any]:
    """The body of a bulk `update` recording a SKU's availability unless a newer one is there.

    For a product not indexed yet (a draft) it leaves a stub, invisible to queries, so the
    product arrives with its stock whatever the order of the events.
    """
    return _upsert(STOCK_SCRIPT, {"sku": sku, "available": available, "seq": seq})


def _upsert(source: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "scripted_upsert": True,
        "upsert": {},
        "script": {"lang": "painless", "source": source, "params": params},
    }


async def create_index(client: AsyncOpenSearch, name: str, *, loading: bool = False) -> None:
    """A new product index; `loading` turns refresh off until `finish_loading` (a bulk load is faster)."""
    settings = {**SETTINGS, "refresh_interval": "-1"} if loading else SETTINGS
    await client.indices.create(
        index=name, body={"settings": settings, "mappings": MAPPINGS}, request_timeout=30
    )


async def finish_loading(client: AsyncOpenSearch, name: str) -> None:
    await client.indices.put_settings(
        index=name, body={"index": {"refresh_interval": None}}, request_timeout=30
    )
    await client.indices.refresh(index=name, request_timeout=60)


async def indices_of(client: AsyncOpenSearch, alias: str) -> list[str]:
    """The indices an alias names; none when the alias does not exist."""
    # 404 is an answer here, not a failure worth the client's warning log line.
    found = await client.indices.get_alias(name=alias, ignore=404)
    if found.get("status") == 404:
        return []
    return sorted(found)


async def ensure_alias(client: AsyncOpenSearch, alias: str) -> bool:
    """Give a fresh deployment an empty index under the alias; whether one had to be created.

    The name is fixed, not timestamped, so instances starting together create one index between them.
    """
    if await indices_of(client, alias):
        return False
    name = alias + INITIAL_SUFFIX
    try:
        await create_index(client, name)
    except RequestError as error:
        if _error_type(error) != "resource_already_exists_exception":
            raise
    await client.indices.update_aliases(
        body={"actions": [{"add": {"index": name, "alias": alias}}]}, request_timeout=30
    )
    return True


def _error_type(error: BaseException) -> str | None:
    info = getattr(error, "info", None)
    if isinstance(info, dict) and isinstance(info.get("error"), dict):
        found = info["error"].get("type")
        return found if isinstance(found, str) else None
    return None
