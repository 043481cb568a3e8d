"""The category tree: one event stream, so every change is decided against the whole tree and no move
can create a cycle, even when two staff members move categories at the same moment."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from products.catalog.errors import CategoryCycle, CategoryNotFound, SlugTaken, StaleVersion
from products.events import CatalogEvent
from products.model import Category
from shopkit.events import Event, EventStore, NewEvent, decide
from shopkit.ids import new_id

STREAM = "category-tree"
# How old the cached tree may be for a read that finds what it looks for: lists and hits of the
# storefront cost no database read in between. A miss always catches up first, so a category
# another instance has just created is found at once; a change shows within this time.
FRESH_FOR = 1.0


@dataclass(frozen=True, slots=True)
class Tree:
    """The tree as its stream has it at `seq`: each category, and the seq of its last change."""

    categories: Mapping[str, Category] = field(default_factory=dict)
    versions: Mapping[str, int] = field(default_factory=dict)
    seq: int = 0

    def apply(self, event: Event) -> Tree:
        return self.apply_all([event])

    def apply_all(self, events: Sequence[Event]) -> Tree:
        # One copy for a whole read, not one per event: a cold instance folds the full history.
        categories, versions, seq = dict(self.categories), dict(self.versions), self.seq
        for event in events:
            category = _category(event)
            categories[category.id], versions[category.id] = category, event.seq
            seq = event.seq
        return Tree(categories, versions, seq)

    def change(
        self, category: Category, expected_version: int | None, event_id: str | None = None
    ) -> NewEvent:
        """The event that makes the change, or why the tree refuses it."""
        if expected_version is not None and self.versions.get(category.id, 0) != expected_version:
            raise StaleVersion(
                f"category {category.id} is at version {self.versions.get(category.id, 0)}"
            )
        if any(c.slug == category.slug and c.id != category.id for c in self.categories.values()):
            raise SlugTaken(f"another category uses the slug {category.slug!r}")
        parent = category.parent_id
        if parent is not None and parent not in self.categories:
            raise CategoryNotFound("the parent category does not exist")
        seen: set[str] = set()
        while parent is not None and parent not in seen:
            if parent == category.id:
                raise CategoryCycle(
                    "the new parent is the category itself or one of its descendants"
                )
            seen.add(parent)
            parent = self.categories[parent].parent_id if parent in self.categories else None
        return NewEvent(
            CatalogEvent.CATEGORY_CHANGED,
            {**category.to_json(), "version": self.seq + 1},
            id=event_id,
        )


class Categories:
    """The tree, cached per process: a read that misses catches up with the stream first, so a
    category another instance has just created is found here too (read your own writes); others
    serve a tree at most FRESH_FOR seconds old."""

    def __init__(self, events: EventStore) -> None:
        self._events = events
        self._tree = Tree()
        self._read_from = -math.inf
        self._lock = asyncio.Lock()

    async def _refresh(self, max_age: float = 0.0) -> None:
        """Catch up with every change committed before this call (or `max_age` seconds earlier).

        Cheap: it reads the slots after the cached seq by `_id`, usually one read that finds the
        next slot free. Callers share it: one whose read started after a caller asked serves that
        caller too, so a burst of reads costs two reads of the stream, not one each.
        """
        asked = time.monotonic() - max_age
        if self._read_from >= asked:
            return
        async with self._lock:
            if self._read_from >= asked:
                return
            started = time.monotonic()
            newer = await self._events.load(STREAM, after_seq=self._tree.seq)
            self._keep(self._tree.apply_all(newer))
            self._read_from = started

    async def _catch_up(self, tree: Tree, seq: int) -> tuple[Tree, int]:
        await self._refresh()
        return self._tree, self._tree.seq

    def _keep(self, tree: Tree) -> None:
        # Both are prefixes of one append-only stream: the longer one is the newer.
        if tree.seq >= self._tree.seq:
            self._tree = tree

    async def all(self, *, include_archived: bool = False) -> list[Category]:
        await self._refresh(FRESH_FOR)
        found = [
            c for c in self._tree.categories.values() if include_archived or not self._hidden(c)
        ]
        return sorted(found, key=lambda c: (c.parent_id or "", c.position, c.name))

    async def get(self, category_id: str, *, include_archived: bool = False) -> Category:
        await self._refresh(FRESH_FOR)
        if category_id not in self._tree.categories:
            await self._refresh()
        category = self._tree.categories.get(category_id)
        if category is None or (self._hidden(category) and not include_archived):
            raise CategoryNotFound()
        return category

    @property
    def tree_version(self) -> int:
        return self._tree.seq

    def version(self, category_id: str) -> int:
        return self._tree.versions.get(category_id, 0)

    async def path(self, category_id: str) -> tuple[str, ...]:
        """The category and its ancestors, root first."""
        await self._refresh(FRESH_FOR)
        if category_id not in self._tree.categories:
            await self._refresh()
        tree = self._tree.categories
        path: list[str] = []
        current: str | None = category_id
        while current is not None and current not in path:
            path.append(current)
            current = tree[current].parent_id if current in tree else None
        return tuple(reversed(path))

    def _hidden(self, category: Category) -> bool:
        tree = self._tree.categories
        seen: set[str] = set()
        current: Category | None = category
        while current is not None and current.id not in seen:
            if current.archived:
                return True
            seen.add(current.id)
            current = tree.get(current.parent_id) if current.parent_id else None
        return False

    async def create(self, fields: dict[str, Any], operation: str | None = None) -> Category:
        """`operation` (see `idempotency.operation_id`) names the creation's event: a retry whose
        first attempt committed unanswered answers that category, not a second one."""
        if operation is not None and (landed := await self._events.find(operation)):
            await self._refresh()
            return _category(landed)
        category = Category(
            id=new_id(), archived=False, position=fields.pop("position", 0), **fields
        )
        return await self._change(category, None, operation)

    async def update(
        self,
        category_id: str,
        changes: dict[str, Any],
        expected_version: int,
        operation: str | None = None,
    ) -> Category:
        """`operation` names the change's event: its retry answers the change, not 412."""
        current = await self.get(category_id, include_archived=True)
        return await self._change(replace(current, **changes), expected_version, operation)

    async def _change(
        self, category: Category, expected_version: int | None, operation: str | None
    ) -> Category:
        # Decided against the cached tree first: the append proves it current, and a refusal
        # (or a lost race) refreshes the cache and decides again against the newer tree.
        changed = await decide(
            self._events,
            STREAM,
            self._tree,
            Tree.apply,
            lambda tree: tree.change(category, expected_version, operation),
            after_seq=self._tree.seq,
            catch_up=self._catch_up,
            event_id=operation,
        )
        self._keep(changed.state)
        return _category(changed.event) if changed.event is not None else category


def _category(event: Event) -> Category:
    """The category a `category.changed` event carries (its `version` is the tree's seq)."""
    return Category(**{k: v for k, v in event.data.items() if k != "version"})
