"""The indexer: the products service's own events, consumed durably, applied to the search index.

When the engine is down every write fails and the kit redelivers with a growing delay (capped at
300 s). MAX_DELIVER keeps that going for days rather than dead-lettering after a few minutes, so
whatever changed during an outage is indexed when the engine is back. Redelivered events may arrive
in any order: the index's version and sequence guards (see `index`) make the newest state win.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from products.events import CatalogEvent, Movement
from products.model import Product
from products.skus import SkuDirectory
from shopkit import broker
from shopkit.events import Event, Payload
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


@dataclass(frozen=True, slots=True)
class StockSeen(Payload):
    """The fields of a movement (`StockMoved`) the index needs."""

    sku: str
    available: int


class IndexWriter(Protocol):
    """The writes the indexer makes (`SearchService` has them)."""

    async def index_product(self, product: Product) -> None: ...

    async def update_stock(self, product_id: str, sku: str, available: int, seq: int) -> None: ...


def subjects(service: str) -> list[str]:
    return [
        broker.subject(service, CatalogEvent.PRODUCT_CHANGED),
        *(broker.subject(service, movement) for movement in Movement),
    ]


async def apply(service: IndexWriter, event: Event, owner_of: SkuOwner) -> None:
    """Apply one event to the index; idempotent, and harmless when older than what is indexed."""
    if event.type == CatalogEvent.PRODUCT_CHANGED:
        # An archived product is a snapshot too, indexed as a tombstone: products has no deletion.
        await service.index_product(Product.from_json(event.data))
    elif event.type in STOCK_EVENTS:
        seen = StockSeen.from_json(event.data)
        product_id = await owner_of(seen.sku)
        if product_id is not None:
            await service.update_stock(product_id, seen.sku, int(seen.available), event.seq)


def consumer(
    service: IndexWriter, stream: str, skus: SkuDirectory
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The cleanup_ctx entry running the indexer's durable consumer."""

    async def handle(app: web.Application, event: Event) -> None:
        await apply(service, event, skus.product_id_for_sku)

    return consume(
        DURABLE, stream=stream, subjects=subjects(stream), handler=handle, max_deliver=MAX_DELIVER
    )
