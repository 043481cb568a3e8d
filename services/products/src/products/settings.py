"""The products service's settings: the kit's plus search, reservations and stock alerts."""

from __future__ import annotations

from dataclasses import dataclass

from shopkit.settings import KitSettings, env


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductsSettings(KitSettings):
    service_name: str = env(
        "SERVICE_NAME", "products", help="service name used in logs, metrics and events"
    )
    opensearch_url: str = env(
        "OPENSEARCH_URL",
        "http://127.0.0.1:9200",
        help="search engine (OpenSearch 2 or Elasticsearch 8+)",
    )
    search_index: str = env(
        "SEARCH_INDEX", "products", help="alias the product index is served under"
    )
    reservation_ttl: int = env(
        "RESERVATION_TTL", 900, help="seconds a stock reservation holds before it expires"
    )
    low_stock_threshold: int = env(
        "LOW_STOCK_THRESHOLD", 5, help="available units at or under which stock.low is published"
    )
    orders_service: str = env(
        "ORDERS_SERVICE",
        "orders",
        help="name the orders service publishes its events under (its stream and subjects)",
    )
