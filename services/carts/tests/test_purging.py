"""Expired carts go: empty ones after hours, guests' after 30 days, users' after 180; merges finish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from carts_support import CURRENT, LINES, Catalog, Shop, quantities

from carts import changes, merging, purging
from carts.carts import Carts, Held
from carts.keys import CARTS
from carts.owners import guest_cart_id
from shopkit import clock, sweeps


def _later(monkeypatch: pytest.MonkeyPatch, **delta: float) -> datetime:
    """Move the services' clock to `delta` from the real now."""
    moment = datetime.now(UTC) + timedelta(**delta)
    monkeypatch.setattr(clock, "now", lambda: moment)
    return moment


async def test_an_emptied_cart_goes_after_hours_and_a_full_one_stays(
    shop: Shop, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    await catalog.add({"MUG-1": 1250})
    emptied = await shop.guest("MUG-1")
    await shop.call("DELETE", LINES, headers=emptied)
    full = await shop.guest("MUG-1")
    carts = shop.client.app[CARTS]

    _later(monkeypatch, hours=8)
    closed = await purging.sweep(carts)
    _later(monkeypatch, hours=11)
    deleted = await purging.sweep(carts)

    assert (closed, deleted) == (1, 1)
    assert (await shop.call("GET", CURRENT, headers=emptied)).status == 404
    assert await carts.store.get(guest_cart_id(emptied["X-Cart-Token"])) is None
    assert await carts.events.head(guest_cart_id(emptied["X-Cart-Token"])) == 0
    assert quantities(await shop.cart(full)) == {"MUG-1": 1}


async def test_a_guest_cart_goes_after_30_days_untouched(
    shop: Shop, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    await catalog.add({"MUG-1": 1250})
    guest = await shop.guest("MUG-1")
    carts = shop.client.app[CARTS]

    _later(monkeypatch, days=29)
    assert await purging.sweep(carts) == 0
    _later(monkeypatch, days=32)
    assert await purging.sweep(carts) == 1

    assert (await shop.call("GET", CURRENT, headers=guest)).status == 404


async def test_a_users_cart_goes_after_180_days_and_their_next_add_starts_a_new_one(
    shop: Shop, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    await catalog.add({"MUG-1": 1250, "MUG-2": 990})
    ann = shop.user("ann")
    await shop.add("MUG-1", 1, ann)
    old_id = (await shop.cart(ann))["id"]
    carts = shop.client.app[CARTS]

    _later(monkeypatch, days=100)
    assert await purging.sweep(carts) == 0
    _later(monkeypatch, days=182)
    assert await purging.sweep(carts) == 1
    ann = shop.user("ann")  # a token minted now: the clock of the verifier is the real one

    assert (await shop.cart(ann))["lines"] == []
    response = await shop.add("MUG-2", 1, ann)
    cart = await response.json()
    assert response.status == 201
    assert cart["id"] != old_id
    assert quantities(cart) == {"MUG-2": 1}


async def test_a_cart_changed_since_it_was_scheduled_is_not_purged(
    shop: Shop, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    await catalog.add({"MUG-1": 1250})
    guest = await shop.guest("MUG-1")
    cart_id = guest_cart_id(guest["X-Cart-Token"])
    carts = shop.client.app[CARTS]
    # a record scheduled from an older state (a snapshot save lost, say)
    scheduled = sweeps.purge_on(clock.now() - timedelta(hours=2), hourly=True)
    await carts.store.reschedule(cart_id, scheduled)

    assert await purging.sweep(carts) == 0

    record = await carts.store.get(cart_id)
    assert record is not None
    assert record.purge_on == sweeps.purge_on(clock.now() + timedelta(days=30))
    assert quantities(await shop.cart(guest)) == {"MUG-1": 1}


async def _merge_cut_short(shop: Shop, catalog: Catalog) -> tuple[Carts, Held]:
    """A guest cart of two mugs whose merge into ann's cart got as far as the guest cart's last
    event, then its process died: the carts, and ann's cart."""
    await catalog.add({"MUG-1": 1250})
    guest = await shop.guest("MUG-1", 2)
    carts = shop.client.app[CARTS]
    target, _ = await carts.open_for_user("ann")
    held = await carts.of_guest(guest["X-Cart-Token"])
    await carts.store.merge_started(held.id, target.id, "ann")
    await carts.write(held, changes.merge_away(target.id, clock.now()))
    return carts, target


async def test_a_merge_cut_short_after_the_guest_closed_is_finished_by_the_sweeper(
    shop: Shop, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    carts, _ = await _merge_cut_short(shop, catalog)

    _later(monkeypatch, minutes=2)
    assert await merging.finish_interrupted(carts) == 1

    assert quantities(await shop.cart(shop.user("ann"))) == {"MUG-1": 2}
    assert await carts.store.merges_under_way(10) == []


async def test_a_cut_short_merge_whose_user_cart_ended_goes_to_the_users_new_cart(
    shop: Shop, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    carts, target = await _merge_cut_short(shop, catalog)
    # the user's (empty) cart expired before the sweeper came to finish the merge
    await carts.write(target, changes.close(lambda cart: True))

    _later(monkeypatch, minutes=2)
    assert await merging.finish_interrupted(carts) == 1

    cart = await shop.cart(shop.user("ann"))
    assert cart["id"] != target.id
    assert quantities(cart) == {"MUG-1": 2}
