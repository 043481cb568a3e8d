"""The category tree decided across instances: each decides against its cached tree, and a stale
cache is caught up with before anything is appended or refused."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from products.categories import Categories
from products.errors import SlugTaken
from shopkit.events import EventStore


@pytest.fixture
async def instances(db: AsyncDatabase[Any]) -> tuple[Categories, Categories]:
    events = EventStore(db)
    await events.ensure_indexes()
    first, second = Categories(events), Categories(events)
    # Both caches warm, so neither reads the stream again on its own for a while.
    await first.all()
    await second.all()
    return first, second


async def test_a_slug_taken_on_another_instance_is_refused_despite_a_stale_cache(
    instances: tuple[Categories, Categories],
) -> None:
    # given a category created on one instance
    first, second = instances
    await first.create({"slug": "shoes", "name": "Shoes", "parent_id": None})

    # when the other instance, whose cache has not seen it, creates one with the same slug
    with pytest.raises(SlugTaken):
        await second.create({"slug": "shoes", "name": "More shoes", "parent_id": None})

    # then the tree holds the first one only, and the second instance has caught up with it
    assert [c.name for c in await second.all()] == ["Shoes"]
    assert second.tree_version == 1


async def test_a_parent_created_on_another_instance_is_found_before_a_refusal(
    instances: tuple[Categories, Categories],
) -> None:
    # given a category created on one instance
    first, second = instances
    parent = await first.create({"slug": "shoes", "name": "Shoes", "parent_id": None})

    # when the other instance, whose cache has not seen it, creates a child of it
    child = await second.create({"slug": "boots", "name": "Boots", "parent_id": parent.id})

    # then the child was appended after the parent, under it
    assert second.version(child.id) == 2
    assert await second.path(child.id) == (parent.id, child.id)
