"""Cursor pagination: `?limit=` (at most 100) and an opaque `?cursor=`, answered as items and next_cursor."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from marshmallow import ValidationError, fields, validate

from shopkit.schemas import Schema

MAX_LIMIT = 100
T = TypeVar("T")


def encode_cursor(position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError("not a cursor this API gave out") from None


class CursorField(fields.String):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return decode_cursor(super()._deserialize(value, attr, data, **kwargs))


class PageQuery(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, MAX_LIMIT))
    cursor = CursorField(load_default=None)


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
