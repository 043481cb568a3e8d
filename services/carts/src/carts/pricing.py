"""Live prices and stock of SKUs, from products' batch lookup, kept in memory between reads.

A quote is reused for `ttl` seconds; `product.changed` drops a product's quotes at once and every
stock movement updates a quoted SKU's availability (`follow`), so a change shows at the next read
without asking products on every read. Expired quotes are kept as the last known ones: when
products is slow or down, a read answers with them, marked stale, within the client's timeout.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg

from carts.errors import ProductsFailed
from carts.events import ProductChanged, ProductEvent, StockEvent, StockMoved
from shopkit.http import ServiceClient
from shopkit.money import Money
from shopkit.problems import Problem

log = logging.getLogger("carts.pricing")
LOOKUP = "/api/v1/products/skus"
LOOKUP_LIMIT = 100
# A SKU whose product changed while it was being looked up is asked again, this many times in all.
LOOKUP_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Quote:
    """What products says of a SKU now. `for_sale` is False for an unknown, archived or unpublished
    SKU (products tells them apart to no one); `available` is None when stock is not tracked."""

    sku: str
    for_sale: bool
    price: Money | None = None
    title: str | None = None
    available: int | None = None
    fetched_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Quotes:
    """The quotes a read got, and whether some are older than they should be (products did not
    answer in time)."""

    found: dict[str, Quote]
    stale: bool


class Prices:
    def __init__(self, products: ServiceClient, ttl: float, size: int = 50_000) -> None:
        self._products = products
        self._ttl = ttl
        self._size = size
        self._quotes: OrderedDict[str, Quote] = OrderedDict()
        # The lookup under way for a SKU, and the drop count when it started.
        self._in_flight: dict[str, tuple[asyncio.Future[set[str]], int]] = {}
        # Drops are numbered, and a lookup stores only quotes of SKUs not dropped since it started.
        self._drops = 0
        self._dropped: dict[str, int] = {}

    async def quotes(self, skus: Sequence[str], *, live: bool = False) -> Quotes:
        """The quotes of `skus`: fresh ones from memory, the rest asked of products in one call.

        `live` asks products for every one (a checkout decides on them) and lets its failure
        through (a problem: 502, 503, 504); otherwise a failure leaves the last known quotes,
        marked stale, and SKUs never quoted are simply missing."""
        now = time.monotonic()
        wanted = [
            sku
            for sku in dict.fromkeys(skus)
            if live
            or (quote := self._quotes.get(sku)) is None
            or now - quote.fetched_at > self._ttl
        ]
        stale = False
        if wanted:
            try:
                for _ in range(LOOKUP_ATTEMPTS):
                    # An answer that may predate a change is thrown away: ask again after it.
                    wanted = await self._ask(wanted, share=not live)
                    if not wanted:
                        break
            except Problem:
                if live:
                    raise
                log.warning(
                    "products did not quote %d SKUs; answering last known prices", len(wanted)
                )
                stale = True
        found = {sku: quote for sku in skus if (quote := self._quotes.get(sku)) is not None}
        if not stale:
            stale = any(now - quote.fetched_at > self._ttl for quote in found.values())
        return Quotes(found, stale)

    def forget(self, skus: Iterable[str]) -> None:
        """The SKUs' prices or status changed: the next read asks products."""
        for sku in skus:
            self._drops += 1
            self._dropped[sku] = self._drops
            quote = self._quotes.get(sku)
            if quote is not None:
                # Kept as the last known quote, but expired.
                self._quotes[sku] = Quote(
                    quote.sku, quote.for_sale, quote.price, quote.title, quote.available, 0.0
                )
        if len(self._dropped) > self._size:
            self._dropped.clear()  # only in-flight lookups read it, and they retry the next time

    def moved(self, sku: str, available: int) -> None:
        """A stock movement's resulting availability, for a SKU quoted here."""
        quote = self._quotes.get(sku)
        if quote is not None and quote.available is not None:
            self._quotes[sku] = Quote(
                quote.sku, quote.for_sale, quote.price, quote.title, available, quote.fetched_at
            )

    async def _ask(self, skus: list[str], *, share: bool) -> list[str]:
        """Ask products for `skus`, joining a lookup already under way for a SKU when `share`: the
        SKUs whose answer was thrown away because their product changed meanwhile."""
        waits: set[asyncio.Future[set[str]]] = set()
        joined = {sku: self._joinable(sku) for sku in skus} if share else {}
        mine = [sku for sku in skus if joined.get(sku) is None]
        for start in range(0, len(mine), LOOKUP_LIMIT):
            batch = mine[start : start + LOOKUP_LIMIT]
            lookup = asyncio.ensure_future(self._lookup(batch))
            waits.add(lookup)
            for sku in batch:
                self._in_flight[sku] = (lookup, self._drops)
            lookup.add_done_callback(functools.partial(self._landed, batch=batch))
        waits.update(lookup for lookup in joined.values() if lookup is not None)
        # Shielded: a caller that gives up must not cancel a lookup others wait for.
        superseded: set[str] = set()
        for result in await asyncio.gather(*map(asyncio.shield, waits), return_exceptions=True):
            if isinstance(result, BaseException):
                raise result
            superseded |= result
        return [sku for sku in skus if sku in superseded]

    def _joinable(self, sku: str) -> asyncio.Future[set[str]] | None:
        """The lookup under way for `sku`, unless the SKU changed since it started (its answer
        would be thrown away)."""
        under_way = self._in_flight.get(sku)
        if under_way is None or self._dropped.get(sku, 0) > under_way[1]:
            return None
        return under_way[0]

    def _landed(self, lookup: asyncio.Future[set[str]], *, batch: list[str]) -> None:
        for sku in batch:
            under_way = self._in_flight.get(sku)
            if under_way is not None and under_way[0] is lookup:
                del self._in_flight[sku]
        if not lookup.cancelled():
            lookup.exception()  # retrieved: a failure is raised to its callers, not logged as lost

    async def _lookup(self, skus: list[str]) -> set[str]:
        """Quote `skus` from products: the SKUs whose answer was thrown away."""
        started, drops = time.monotonic(), self._drops
        answer = await self._products.request("GET", LOOKUP, params={"skus": ",".join(skus)})
        try:
            if answer.status != 200:
                raise ValueError(f"status {answer.status}")
            quotes = {sku: Quote(sku, False, fetched_at=started) for sku in answer.body["missing"]}
            for item in answer.body["items"]:
                quotes[item["sku"]] = _quote(item, started)
        except (KeyError, TypeError, ValueError) as error:
            log.error("products answered the SKU lookup wrongly: %s", error)
            raise ProductsFailed(f"products answered the SKU lookup wrongly ({error})") from None
        superseded = set()
        for sku, quote in quotes.items():
            if self._dropped.get(sku, 0) > drops:
                superseded.add(sku)  # changed while we asked: this answer may predate the change
                continue
            self._quotes[sku] = quote
            self._quotes.move_to_end(sku)
        while len(self._quotes) > self._size:
            self._quotes.popitem(last=False)
        return superseded


def _quote(item: dict[str, Any], fetched_at: float) -> Quote:
    return Quote(
        sku=item["sku"],
        for_sale=True,
        price=Money(**item["price"]),
        title=item["title"],
        available=item["available"] if item["track_stock"] else None,
        fetched_at=fetched_at,
    )


def on_product_message(prices: Prices, message: Msg) -> None:
    """products' `product.changed` drops the product's SKUs; a stock movement updates one SKU."""
    try:
        body = json.loads(message.data)
        if body["type"] == ProductEvent.CHANGED:
            prices.forget(ProductChanged.from_json(body["data"]).skus)
        elif body["type"] in set(StockEvent):
            moved = StockMoved.from_json(body["data"])
            prices.moved(moved.sku, int(moved.available))
    except (ValueError, KeyError, TypeError):
        log.warning("ignored a malformed products event on %s", message.subject)
