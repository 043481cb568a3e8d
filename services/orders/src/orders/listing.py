"""Pages of orders, newest first: a customer's own, or, for staff, every order by filters.

A customer's orders are read whole and sorted (the cost of one customer's orders). Staff lists
walk the UTC days an order was placed on, newest first, each day one indexed equality with the
filters (FerretDB pushes down no range or sort), until the page is full or the range is walked:
`from` defaults to DEFAULT_DAYS before `to`, and `to` to today.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from orders.model import Order
from orders.store import FILTERS, OrderStore
from shopkit import clock

DEFAULT_DAYS = 90


def _position(order: Order) -> list[str]:
    return [clock.rfc3339(order.created_at), order.id]


def _after(orders: Iterable[Order], cursor: list[str] | None) -> list[Order]:
    if cursor is None:
        return list(orders)
    return [order for order in orders if _position(order) < cursor]


def _page(orders: list[Order], limit: int) -> tuple[list[Order], list[str] | None]:
    if len(orders) > limit:
        return orders[:limit], _position(orders[limit - 1])
    return orders, None


def _matches(order: Order, filters: dict[str, str]) -> bool:
    state = {
        "status": order.status.value,
        "payment_status": order.payment_status.value,
        "fulfilment_status": order.fulfilment_status.value,
        "email": order.email,
    }
    return all(state[name] == value for name, value in filters.items())


async def of_customer(
    store: OrderStore, user_id: str, query: dict[str, Any]
) -> tuple[list[Order], list[str] | None]:
    filters = {name: query[name] for name in FILTERS if name in query}
    mine = [order for order in await store.of_customer(user_id) if _matches(order, filters)]
    return _page(_after(mine, query.get("cursor")), query["limit"])


async def of_staff(
    store: OrderStore, query: dict[str, Any]
) -> tuple[list[Order], list[str] | None]:
    filters = {name: query[name] for name in FILTERS if name in query}
    if "number" in query:  # one order, by its index
        numbered = await store.by_number(query["number"])
        return ([numbered] if numbered is not None and _matches(numbered, filters) else []), None
    cursor: list[str] | None = query.get("cursor")
    last: date = query.get("placed_to") or clock.now().date()
    first: date = query.get("placed_from") or last - timedelta(days=DEFAULT_DAYS)
    if cursor is not None:
        last = min(last, datetime.fromisoformat(cursor[0]).date())
    found: list[Order] = []
    day = last
    while day >= first and len(found) <= query["limit"]:
        found += _after(await store.of_day(day.isoformat(), filters), cursor)
        day -= timedelta(days=1)
    return _page(found, query["limit"])
