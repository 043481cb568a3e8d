"""Every query the carts service makes is served by an index, read from PostgreSQL's own plans."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from carts_support import CURRENT, LINES, Catalog, Client, Shop

from carts import purging
from carts.keys import CARTS
from shopkit import clock
from shopkit.testing.explain import KIT_READ_WHOLE, ExplainedMongo
from shopkit.testing.tokens import TokenFactory

READ_WHOLE = {**KIT_READ_WHOLE, "merges": "only the merges under way, each removed when done"}


async def test_every_query_of_a_shopping_journey_is_served_by_an_index(
    start_carts: Callable[..., Awaitable[Client]],
    explained_mongo: ExplainedMongo,
    database_name: str,
    tokens: TokenFactory,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await catalog.add({"MUG-1": 1250, "MUG-2": 990})
    shop = Shop(await start_carts(MONGO_URL=explained_mongo.url), tokens)
    staff, orders, ann = shop.user("s", "staff"), shop.user("o", "service"), shop.user("ann")

    async def call(method: str, path: str, expected: int, **kwargs: object) -> object:
        response = await shop.call(method, path, **kwargs)  # type: ignore[arg-type]
        assert response.status == expected, f"{method} {path}: {await response.text()}"
        return await response.json() if response.status != 204 else None

    # A guest fills a cart, changes it, then signs in and merges it.
    guest = await shop.guest("MUG-1", 2)
    await call("POST", LINES, 200, headers=guest, json={"sku": "MUG-2", "quantity": 1})
    await call("PATCH", f"{LINES}/MUG-1", 200, headers=guest, json={"quantity": 3})
    await call("PATCH", CURRENT, 200, headers=guest, json={"email": "ann@example.com"})
    await call("DELETE", f"{LINES}/MUG-2", 200, headers=guest)
    await call("GET", CURRENT, 200, headers=guest)
    await call("POST", LINES, 201, headers=ann, json={"sku": "MUG-2", "quantity": 1})
    merged = await call("POST", "/api/v1/carts/current/merge", 200, headers={**ann, **guest})
    cart_id = merged["id"]  # type: ignore[index]
    # Staff read it; orders holds it and lets it go.
    await call("GET", f"/api/v1/carts/{cart_id}", 200, headers=staff)
    await call("GET", f"/internal/carts/{cart_id}", 200, headers=orders)
    checkout = f"/internal/carts/{cart_id}/checkout"
    await call("POST", checkout, 201, headers=orders, json={"order_id": "o-1"})
    await call("POST", f"{checkout}/o-1/release", 204, headers=orders)
    # Another guest empties a cart, which the sweeper closes and then deletes.
    emptied = await shop.guest("MUG-1")
    await call("DELETE", LINES, 200, headers=emptied)
    for hours in (8, 11):
        moment = datetime.now(UTC) + timedelta(hours=hours)
        monkeypatch.setattr(clock, "now", lambda moment=moment: moment)
        await purging.sweep(shop.client.app[CARTS])

    scans = explained_mongo.unexpected(database_name, READ_WHOLE)
    assert scans == [], "\n".join(map(str, scans))
