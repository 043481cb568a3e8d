"""Cursor pagination: `?limit=` (at most 100) and an opaque `?cursor=`, answered as items and next_cursor."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from marshmallow import ValidationError, fields, validate

from shopkit.schemas import Schema

__all__ = ["MAX_LIMIT", "CursorField", "Page", "PageQuery", "encode_cursor"]

MAX_LIMIT = 100
# A cursor is ours only if it is short, shallow and holds numbers that MongoDB and the search engine
# store (64-bit integers, finite floats): anything else would fail there and answer 500.
MAX_CURSOR_LENGTH = 512
MAX_CURSOR_DEPTH = 3
INT64 = range(-(2**63), 2**63)
T = TypeVar("T")


def encode_cursor(position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise ValidationError("not a cursor this API gave out")
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise ValidationError("not a cursor this API gave out") from None
    if not _bounded(position, MAX_CURSOR_DEPTH):
        raise ValidationError("not a cursor this API gave out")
    return position


def _bounded(value: Any, depth: int) -> bool:
    if value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return value in INT64
    if isinstance(value, float):
        return math.isfinite(value)
    if depth == 0:
        return False
    if isinstance(value, list):
        return all(_bounded(item, depth - 1) for item in value)
    return isinstance(value, dict) and all(_bounded(item, depth - 1) for item in value.values())


class CursorField(fields.String):
    """An opaque cursor, decoded; `kind` is the type its position must have (any bounded JSON if None)."""

    def __init__(self, kind: type | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = kind

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        position = decode_cursor(super()._deserialize(value, attr, data, **kwargs))
        # `type(...) is`: True is an int to isinstance, and never a position.
        if self.kind is not None and type(position) is not self.kind:
            raise ValidationError("not a cursor this API gave out")
        return position


class PageQuery(Schema):
    """A page of a list ordered by id: the cursor is the last id of the previous page."""

    limit = fields.Integer(load_default=20, validate=validate.Range(1, MAX_LIMIT))
    cursor = CursorField(str, load_default=None)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None

    @classmethod
    def of(
        cls,
        rows: Sequence[T],
        limit: int,
        position: Callable[[T], Any],
        show: Callable[[T], dict[str, Any]],
    ) -> Page:
        """A page from rows fetched with `limit + 1`: the extra row only says that another page exists."""
        more = len(rows) > limit
        return cls(
            [show(row) for row in rows[:limit]],
            encode_cursor(position(rows[limit - 1])) if more else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}
