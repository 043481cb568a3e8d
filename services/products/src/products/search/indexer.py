"""The indexer: the products service's own events, consumed durably, applied to the search index.

When the engine is down every write fails and the kit redelivers with a growing delay (capped at
300 s). MAX_DELIVER keeps that going for days rather than dead-lettering after a few minutes, so
whatever changed during an outage is indexed when the engine is back. Redelivered events may arrive
in any order: the index's version and sequence guards (see `index`) make the newest state win.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from aiohttp import web

from products.events import Movement
from products.model import Product
from products.skus import SkuDirectory
from shopkit import broker
from shopkit.events import Event
from shopkit.inbox import consume

DURABLE = "products-search"
# About 3.5 days of retries at the kit's 300 s cap. Not higher: the kit's backoff computes
# `2 ** (deliveries - 1)` as a float, which overflows past 1024 deliveries.
MAX_DELIVER = 1000
# Ledger events, numbered by their SKU's stream `stock-<sku>`; their data carries `sku` and the
# resulting `available`. Alerts (stock.low, stock.out) live on streams of their own: their seqs
# would not compare, and they change no level.
STOCK_EVENTS = frozenset(movement.value for movement in Movement)
SkuOwner = Callable[[str], Awaitable[str | None]]


class IndexWriter(Protocol):
    """The writes the indexer makes (`SearchService` has them)."""

    async def index_product(self, product: Product) -> None: ...

    async def delete(self, product_id: str, version: int) -> None: ...

    async def update_stock(self, product_id: str, sku: str, available: int, seq: int) -> None: ...


def subjects(service: str) -> list[str]:
    return [
        broker.subject(service, "product.changed"),
        broker.subject(service, "product.deleted"),
        broker.subject(service, "stock.>"),
    ]


async def apply(service: IndexWriter, event: Event, owner_of: SkuOwner) -> None:
    """Apply one event to the index; idempotent, and harmless when older than what is indexed."""
    if event.type == "product.changed":
        await service.index_product(Product.from_json(event.data))
    elif event.type == "product.deleted":
        # The product's stream seq is its version, so the deletion outranks every snapshot before it.
        await service.delete(str(event.data["id"]), event.seq)
    elif event.type in STOCK_EVENTS:
        sku = str(event.data["sku"])
        product_id = event.data.get("product_id") or await owner_of(sku)
        if product_id is not None:
            await service.update_stock(
                str(product_id), sku, int(event.data["available"]), event.seq
            )


def consumer(
    service: IndexWriter, stream: str, skus: SkuDirectory
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The cleanup_ctx entry running the indexer's durable consumer."""

    async def handle(app: web.Application, event: Event) -> None:
        await apply(service, event, skus.product_id_for_sku)

    return consume(
        DURABLE, stream=stream, subjects=subjects(stream), handler=handle, max_deliver=MAX_DELIVER
    )
