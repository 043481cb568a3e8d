"""Validated search parameters to query DSL, and the engine's answer back to our JSON.

Facets follow the post_filter pattern: the query (text plus visibility) scopes the aggregations,
the selected filters go to `post_filter` (they narrow the hits only), and each facet's aggregation is
wrapped in a filter of every OTHER selected facet. So choosing brand X still shows the counts of the
other brands, while the category counts already reflect brand X.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shopkit.pagination import encode_cursor

PRICE_RANGES: tuple[tuple[int, int | None], ...] = (
    (0, 2500),
    (2500, 5000),
    (5000, 10000),
    (10000, 25000),
    (25000, 50000),
    (50000, 100000),
    (100000, None),
)
FACET_SIZE = 100
MAX_WORDS = 10
ATTRIBUTE_NAMES = 50
SUGGEST_FIELDS = ["name.suggest", "name.suggest._2gram", "name.suggest._3gram"]
TEXT_FIELDS = ["name^3", "brand^2", "description", "attr_text"]
VISIBLE: dict[str, Any] = {"term": {"visible": True}}
ITEM_SOURCE = ["product", "in_stock"]


class Sort(StrEnum):
    RELEVANCE = "relevance"
    PRICE = "price"
    PRICE_DESC = "-price"
    NEWEST = "newest"
    NAME = "name"


# The id breaks ties, so search_after walks every document exactly once.
SORTS: dict[Sort, list[dict[str, str]]] = {
    Sort.RELEVANCE: [{"_score": "desc"}, {"id": "asc"}],
    Sort.PRICE: [{"price_min": "asc"}, {"id": "asc"}],
    Sort.PRICE_DESC: [{"price_min": "desc"}, {"id": "asc"}],
    Sort.NEWEST: [{"created_at": "desc"}, {"id": "asc"}],
    Sort.NAME: [{"name.sort": "asc"}, {"id": "asc"}],
}
# What a cursor's first sort value must be for each sort (the engine answers 400 otherwise).
SORT_VALUE_TYPES: dict[Sort, tuple[type, ...]] = {
    Sort.RELEVANCE: (int, float),
    Sort.PRICE: (int,),
    Sort.PRICE_DESC: (int,),
    Sort.NEWEST: (int,),
    Sort.NAME: (str,),
}


@dataclass(frozen=True, slots=True)
class Filters:
    """What the customer selected; values within one facet are alternatives (OR), facets combine (AND)."""

    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    # (name, values) pairs rather than a dict, so parameters hash and can key the results cache.
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    min_price: int | None = None
    max_price: int | None = None
    in_stock: bool | None = None

    def clauses(self) -> dict[str, dict[str, Any]]:
        """One filter clause per selected facet, keyed by the facet it belongs to."""
        found: dict[str, dict[str, Any]] = {}
        if self.categories:
            found["category"] = {"terms": {"category_path": list(self.categories)}}
        if self.brands:
            found["brand"] = {"terms": {"brand.keyword": list(self.brands)}}
        for name, values in self.attributes:
            found["attr." + name] = {
                "nested": {
                    "path": "attrs",
                    "query": {
                        "bool": {
                            "filter": [
                                {"term": {"attrs.name": name}},
                                {"terms": {"attrs.value": list(values)}},
                            ]
                        }
                    },
                }
            }
        if self.min_price is not None or self.max_price is not None:
            bounds = {"gte": self.min_price, "lte": self.max_price}
            found["price"] = {
                "range": {"price_min": {k: v for k, v in bounds.items() if v is not None}}
            }
        if self.in_stock is not None:
            found["in_stock"] = {"term": {"in_stock": self.in_stock}}
        return found


@dataclass(frozen=True, slots=True)
class SearchParams:
    q: str | None = None
    filters: Filters = field(default_factory=Filters)
    sort: Sort = Sort.NEWEST
    limit: int = 20
    # The sort values of the last item of the previous page, from the cursor.
    after: tuple[Any, ...] | None = None


def _all_of(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    return {"bool": {"filter": clauses}} if clauses else {"match_all": {}}


def _text_query(q: str) -> dict[str, Any]:
    # Each word must match ("apple iphone" is not every Apple product plus every phone): exactly in a
    # boosted field, or within a typo's edit distance anywhere. One multi_match over the whole text
    # cannot require every word with fuzziness, and cross_fields refuses fuzziness.
    words = list(dict.fromkeys(q.split()))[:MAX_WORDS]
    per_word = [
        {
            "dis_max": {
                "tie_breaker": 0.3,
                "queries": [
                    {
                        "multi_match": {
                            "query": word,
                            "fields": TEXT_FIELDS,
                            "type": "best_fields",
                            "tie_breaker": 0.3,
                        }
                    },
                    # Edit distance 0, 1 or 2 by word length: "iphnoe" still finds "iPhone".
                    {"match": {"all_text": {"query": word, "fuzziness": "AUTO", "boost": 0.5}}},
                ],
            }
        }
        for word in words
    ]
    return {
        "bool": {
            "must": [
                # All of up to three words; of longer queries three in four, so one stray word is forgiven.
                {"bool": {"should": per_word, "minimum_should_match": "3<75%"}}
            ],
            # Exact words in the name outrank fuzzy and description matches.
            "should": [{"match": {"name": {"query": q, "operator": "and", "boost": 2}}}],
        }
    }


def _paging(params: SearchParams, body: dict[str, Any]) -> dict[str, Any]:
    # One more than asked: whether it comes back says if there is a next page.
    body["size"] = params.limit + 1
    body["sort"] = SORTS[params.sort]
    if params.after is not None:
        body["search_after"] = list(params.after)
    return body


def list_body(params: SearchParams) -> dict[str, Any]:
    """A filtered product list: every filter in the query, where the engine caches it."""
    clauses = [VISIBLE, *params.filters.clauses().values()]
    return _paging(
        params,
        {"query": {"bool": {"filter": clauses}}, "_source": ITEM_SOURCE, "track_total_hits": False},
    )


def search_body(params: SearchParams) -> dict[str, Any]:
    """Full text, facets with counts, highlights and search_after pagination."""
    selected = params.filters.clauses()
    query: dict[str, Any] = {"bool": {"filter": [VISIBLE]}}
    if params.q:
        query["bool"]["must"] = [_text_query(params.q)]
    body: dict[str, Any] = {
        "query": query,
        "_source": ITEM_SOURCE,
        "track_total_hits": True,
        "aggs": _facets(selected, params.filters),
    }
    if selected:
        body["post_filter"] = _all_of(list(selected.values()))
    if params.q:
        # Words found as typed are marked; a typo's match is found but not marked, because
        # highlighting fuzzy terms expands them again and about doubles the query's cost.
        body["highlight"] = {
            # Escapes the product text, so only our <em> tags are markup.
            "encoder": "html",
            "pre_tags": ["<em>"],
            "post_tags": ["</em>"],
            "fields": {
                "name": {"number_of_fragments": 0},
                "description": {"fragment_size": 160, "number_of_fragments": 1},
            },
        }
    return _paging(params, body)


def _facets(selected: dict[str, dict[str, Any]], filters: Filters) -> dict[str, Any]:
    def others(facet: str) -> dict[str, Any]:
        return _all_of([clause for name, clause in selected.items() if name != facet])

    aggs: dict[str, Any] = {
        "category": {
            "filter": others("category"),
            "aggs": {"values": {"terms": {"field": "category_path", "size": FACET_SIZE}}},
        },
        "brand": {
            "filter": others("brand"),
            "aggs": {"values": {"terms": {"field": "brand.keyword", "size": FACET_SIZE}}},
        },
        "price": {
            "filter": others("price"),
            "aggs": {
                "values": {
                    "range": {
                        "field": "price_min",
                        "ranges": [_price_range(low, high) for low, high in PRICE_RANGES],
                    }
                }
            },
        },
        "in_stock": {
            "filter": others("in_stock"),
            "aggs": {"values": {"terms": {"field": "in_stock"}}},
        },
        # Attributes nobody selected: counted under every selected filter.
        "attributes": {
            "filter": _all_of(list(selected.values())),
            "aggs": {
                "attrs": {
                    "nested": {"path": "attrs"},
                    "aggs": {
                        "names": {
                            "terms": {"field": "attrs.name", "size": ATTRIBUTE_NAMES},
                            "aggs": {
                                "values": {"terms": {"field": "attrs.value", "size": FACET_SIZE}}
                            },
                        }
                    },
                }
            },
        },
    }
    # A selected attribute is counted under every filter but its own (names may hold any character,
    # so the aggregation is named by position).
    for position, (name, _) in enumerate(filters.attributes):
        aggs[f"attr_{position}"] = {
            "filter": others("attr." + name),
            "aggs": {
                "attrs": {
                    "nested": {"path": "attrs"},
                    "aggs": {
                        "named": {
                            "filter": {"term": {"attrs.name": name}},
                            "aggs": {
                                "values": {"terms": {"field": "attrs.value", "size": FACET_SIZE}}
                            },
                        }
                    },
                }
            },
        }
    return aggs


def _price_range(low: int, high: int | None) -> dict[str, Any]:
    found: dict[str, Any] = {"key": f"{low}-{'*' if high is None else high}", "from": low}
    if high is not None:
        found["to"] = high
    return found


def _buckets(agg: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"value": b["key"], "count": b["doc_count"]} for b in agg["values"]["buckets"]]


def read_facets(aggregations: Mapping[str, Any], filters: Filters) -> dict[str, Any]:
    attributes = {
        bucket["key"]: _buckets(bucket)
        for bucket in aggregations["attributes"]["attrs"]["names"]["buckets"]
    }
    for position, (name, _) in enumerate(filters.attributes):
        attributes[name] = _buckets(aggregations[f"attr_{position}"]["attrs"]["named"])
    return {
        "category": _buckets(aggregations["category"]),
        "brand": _buckets(aggregations["brand"]),
        "attributes": attributes,
        "price": [
            {"key": b["key"], "from": b.get("from"), "to": b.get("to"), "count": b["doc_count"]}
            for b in aggregations["price"]["values"]["buckets"]
        ],
        "in_stock": [
            {"value": bool(b["key"]), "count": b["doc_count"]}
            for b in aggregations["in_stock"]["values"]["buckets"]
        ],
    }


def _item(hit: Mapping[str, Any]) -> dict[str, Any]:
    source = hit["_source"]
    return {**source["product"], "in_stock": bool(source.get("in_stock", False))}


def read_page(
    response: Mapping[str, Any], params: SearchParams
) -> tuple[list[dict[str, Any]], str | None]:
    """The page's items (public product JSON plus `in_stock` and any highlights) and the next cursor."""
    hits = response["hits"]["hits"]
    page = hits[: params.limit]
    items = []
    for hit in page:
        item = _item(hit)
        if "highlight" in hit:
            item["highlights"] = {
                name: " … ".join(parts) for name, parts in hit["highlight"].items()
            }
        items.append(item)
    next_cursor = None
    if len(hits) > params.limit:
        next_cursor = encode_cursor({"sort": params.sort.value, "after": page[-1]["sort"]})
    return items, next_cursor


def suggest_body(prefix: str, size: int) -> dict[str, Any]:
    return {
        "size": size,
        "_source": ["id", "slug", "name"],
        "query": {
            "bool": {
                "must": [
                    {
                        "multi_match": {
                            "query": prefix,
                            "type": "bool_prefix",
                            "fields": SUGGEST_FIELDS,
                            # Applies to the finished words; the last one is matched as a prefix.
                            "fuzziness": "AUTO",
                        }
                    }
                ],
                "filter": [VISIBLE],
            }
        },
    }
