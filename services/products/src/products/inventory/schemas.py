"""Request bodies and queries of the inventory API (unknown fields are refused, counts are strict integers)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError, fields, post_load, validate, validates

from shopkit.pagination import CursorField, PageQuery
from shopkit.schemas import Schema, WholeNumber

MAX_QUANTITY = 1_000_000
MAX_LINE_QUANTITY = 10_000
MAX_TTL_SECONDS = 7 * 24 * 3600
# The catalog's SKU shape, and order ids of the same alphabet: neither may hold the ':' that
# separates the parts of a derived event id.
SKU_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
SKU = validate.Regexp(SKU_SHAPE, error="letters, digits, dot, dash, underscore")
ORDER_ID = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z", error="letters, digits, dot, dash, underscore"
)


class Count(WholeNumber):
    """A whole number given as a JSON number: not a string, not a fraction, not a boolean."""


def Reason(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(1, 500), **kwargs)


@dataclass(frozen=True, slots=True)
class Receipt:
    quantity: int
    reason: str


@dataclass(frozen=True, slots=True)
class Adjustment:
    delta: int
    reason: str


@dataclass(frozen=True, slots=True)
class ReservationRequest:
    order_id: str
    lines: tuple[tuple[str, int], ...]
    ttl_seconds: int | None


@dataclass(frozen=True, slots=True)
class Conclusion:
    reason: str | None


class ReceiptSchema(Schema):
    quantity = Count(required=True, validate=validate.Range(1, MAX_QUANTITY))
    reason = Reason(required=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Receipt:
        return Receipt(**data)


class AdjustmentSchema(Schema):
    delta = Count(
        required=True,
        validate=validate.Range(-MAX_QUANTITY, MAX_QUANTITY),
        metadata={"not": {"const": 0}},
    )
    reason = Reason(required=True)

    @validates("delta")
    def not_zero(self, value: int, **_: Any) -> None:
        if value == 0:
            raise ValidationError("an adjustment changes the count: give a delta other than 0")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Adjustment:
        return Adjustment(**data)


class ReservationLineSchema(Schema):
    sku = fields.String(required=True, validate=SKU)
    quantity = Count(required=True, validate=validate.Range(1, MAX_LINE_QUANTITY))


class ReservationSchema(Schema):
    order_id = fields.String(required=True, validate=ORDER_ID)
    lines = fields.List(
        fields.Nested(ReservationLineSchema), required=True, validate=validate.Length(1, 100)
    )
    ttl_seconds = Count(validate=validate.Range(1, MAX_TTL_SECONDS), load_default=None)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ReservationRequest:
        return ReservationRequest(
            order_id=data["order_id"],
            lines=tuple((line["sku"], line["quantity"]) for line in data["lines"]),
            ttl_seconds=data["ttl_seconds"],
        )


class ConclusionSchema(Schema):
    """The optional body of release and commit, which conclude a reservation: why, for the ledger."""

    reason = Reason(load_default=None)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Conclusion:
        return Conclusion(**data)


class MovementQuery(PageQuery):
    """Newest first; the cursor is the oldest seq of the previous page."""

    cursor = CursorField(int, load_default=None)

    @validates("cursor")
    def a_seq(self, value: Any, **_: Any) -> None:
        if value is not None and value < 1:
            raise ValidationError("not a cursor this API gave out")
