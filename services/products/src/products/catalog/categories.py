"""The category tree: one event stream, so every change is decided against the whole tree and no move
can create a cycle, even when two staff members move categories at the same moment."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

from products.catalog.errors import CategoryCycle, CategoryNotFound, SlugTaken, StaleVersion
from products.model import Category
from shopkit.events import ConcurrencyConflict, EventStore
from shopkit.ids import new_id
from shopkit.problems import Conflict

STREAM = "category-tree"
REFRESH_SECONDS = 1.0
ATTEMPTS = 10


class Categories:
    def __init__(self, events: EventStore) -> None:
        self._events = events
        self._tree: dict[str, Category] = {}
        self._versions: dict[str, int] = {}
        self._seq = 0
        self._refreshed = 0.0
        self._lock = asyncio.Lock()

    async def _refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._refreshed < REFRESH_SECONDS:
            return
        async with self._lock:
            for event in await self._events.load(STREAM, after_seq=self._seq):
                category = Category(**{k: v for k, v in event.data.items() if k != "version"})
                self._tree[category.id] = category
                self._versions[category.id] = event.seq
                self._seq = event.seq
            self._refreshed = time.monotonic()

    async def all(self, *, include_archived: bool = False) -> list[Category]:
        await self._refresh()
        found = [c for c in self._tree.values() if include_archived or not self._hidden(c)]
        return sorted(found, key=lambda c: (c.parent_id or "", c.position, c.name))

    async def get(self, category_id: str, *, include_archived: bool = False) -> Category:
        await self._refresh()
        category = self._tree.get(category_id)
        if category is None or (self._hidden(category) and not include_archived):
            raise CategoryNotFound()
        return category

    @property
    def tree_version(self) -> int:
        return self._seq

    def version(self, category_id: str) -> int:
        return self._versions.get(category_id, 0)

    async def path(self, category_id: str) -> tuple[str, ...]:
        """The category and its ancestors, root first."""
        await self._refresh()
        path: list[str] = []
        current: str | None = category_id
        while current is not None and current not in path:
            path.append(current)
            current = self._tree[current].parent_id if current in self._tree else None
        return tuple(reversed(path))

    def _hidden(self, category: Category) -> bool:
        seen: set[str] = set()
        current: Category | None = category
        while current is not None and current.id not in seen:
            if current.archived:
                return True
            seen.add(current.id)
            current = self._tree.get(current.parent_id) if current.parent_id else None
        return False

    async def create(self, fields: dict[str, Any]) -> Category:
        category = Category(
            id=new_id(), archived=False, position=fields.pop("position", 0), **fields
        )
        return await self._change(category, expected_version=None)

    async def update(
        self, category_id: str, changes: dict[str, Any], expected_version: int
    ) -> Category:
        await self._refresh(force=True)
        current = await self.get(category_id, include_archived=True)
        return await self._change(replace(current, **changes), expected_version=expected_version)

    async def _change(self, category: Category, expected_version: int | None) -> Category:
        for _ in range(ATTEMPTS):
            await self._refresh(force=True)
            if expected_version is not None and self.version(category.id) != expected_version:
                raise StaleVersion(
                    f"category {category.id} is at version {self.version(category.id)}"
                )
            self._validate(category)
            try:
                event = await self._events.append(
                    STREAM,
                    self._seq,
                    "category.changed",
                    {**category.to_json(), "version": self._seq + 1},
                )
            except ConcurrencyConflict:
                continue  # another change to the tree landed first: decide again against it
            self._tree[category.id] = category
            self._versions[category.id] = event.seq
            self._seq = event.seq
            return category
        raise Conflict("the category tree kept changing; try again")

    def _validate(self, category: Category) -> None:
        if any(c.slug == category.slug and c.id != category.id for c in self._tree.values()):
            raise SlugTaken(f"another category uses the slug {category.slug!r}")
        parent = category.parent_id
        if parent is None:
            return
        if parent not in self._tree:
            raise CategoryNotFound("the parent category does not exist")
        seen: set[str] = set()
        while parent is not None and parent not in seen:
            if parent == category.id:
                raise CategoryCycle(
                    "the new parent is the category itself or one of its descendants"
                )
            seen.add(parent)
            parent = self._tree[parent].parent_id if parent in self._tree else None
