"""Pages of orders, newest first: a customer's own, or, for staff, every order by filters.

A list reads positions first (each order's placing time and id, not the order), sorts them (FerretDB
pushes down no range or sort), and then reads whole only the orders of the page. A customer's
positions are one indexed equality (the cost of that customer's orders); staff lists walk the UTC
days orders were placed on, newest first, each day one indexed equality with the filters, until
the page is full or the range is walked: `from` defaults to DEFAULT_DAYS before `to`, and `to` to
today.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from orders.model import Order
from orders.store import FILTERS, OrderStore, Position
from shopkit import clock

DEFAULT_DAYS = 90


def _after(positions: Iterable[Position], cursor: list[str] | None) -> list[Position]:
    """Newest first, and only those after the cursor (the last position of the page before)."""
    ordered = sorted(positions, reverse=True)
    if cursor is None:
        return ordered
    last = (datetime.fromisoformat(cursor[0]), cursor[1])
    return [position for position in ordered if position < last]


async def _page(
    store: OrderStore, positions: list[Position], limit: int
) -> tuple[list[Order], list[str] | None]:
    """The page's orders (read whole, only those), and the cursor to the next page."""
    shown = positions[:limit]
    following = [clock.rfc3339(shown[-1][0]), shown[-1][1]] if len(positions) > limit else None
    return await store.many([order_id for _, order_id in shown]), following


async def of_customer(
    store: OrderStore, user_id: str, query: dict[str, Any]
) -> tuple[list[Order], list[str] | None]:
    filters = {name: query[name] for name in FILTERS if name in query}
    mine = await store.positions({"user_id": user_id, **filters})
    return await _page(store, _after(mine, query.get("cursor")), query["limit"])


async def of_staff(
    store: OrderStore, query: dict[str, Any]
) -> tuple[list[Order], list[str] | None]:
    filters = {name: query[name] for name in FILTERS if name in query}
    if "number" in query:  # one order, by its index
        numbered = await store.by_number(query["number"])
        matches = numbered is not None and all(
            getattr(numbered, name) == value for name, value in filters.items()
        )
        return ([numbered] if numbered is not None and matches else []), None
    cursor: list[str] | None = query.get("cursor")
    last: date = query.get("placed_to") or clock.now().date()
    first: date = query.get("placed_from") or last - timedelta(days=DEFAULT_DAYS)
    if cursor is not None:
        last = min(last, datetime.fromisoformat(cursor[0]).date())
    found: list[Position] = []
    day = last
    while day >= first and len(found) <= query["limit"]:
        found += _after(await store.positions({"day": day.isoformat(), **filters}), cursor)
        day -= timedelta(days=1)
    return await _page(store, found, query["limit"])
