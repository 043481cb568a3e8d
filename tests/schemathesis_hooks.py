"""Schemathesis hooks for tests/test_openapi_fuzz.py: requests as a real client would shape them."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import schemathesis

LISTING_DAYS = timedelta(days=366)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    # A client sends a fresh Idempotency-Key with each distinct request; the fuzzer reuses its
    # drawn keys with other bodies, which the service rightly refuses (422 idempotency-key-reused).
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    # A cursor is valid only as the API gave it out; no schema can say which opaque strings are.
    if case.query and "cursor" in case.query:
        del case.query["cursor"]
    # Rules across parameters or items that JSON Schema cannot state, each refused with 422 and
    # described in the document: min_price not above max_price; per product, SKUs differ and one
    # currency prices every variant.
    query = case.query or {}
    if "min_price" in query and "max_price" in query:
        try:
            low, high = int(query["min_price"]), int(query["max_price"])
        except (TypeError, ValueError):
            pass
        else:
            query["min_price"], query["max_price"] = min(low, high), max(low, high)
    _order_dates(query)
    body = case.body if isinstance(case.body, dict) else {}
    variants = body.get("variants")
    if isinstance(variants, list) and all(isinstance(v, dict) for v in variants):
        currency = next((v["price"].get("currency") for v in variants if _priced(v)), None)
        for index, variant in enumerate(variants):
            if isinstance(variant.get("sku"), str) and 0 < len(variant["sku"]) <= 60:
                variant["sku"] = f"{variant['sku']}-{index}"
            if _priced(variant) and currency is not None:
                variant["price"]["currency"] = currency
            # compare_at_price, when given, is above the price in the same currency.
            compare, price = variant.get("compare_at_price"), variant.get("price")
            if isinstance(compare, dict) and _priced(variant) and "currency" in compare:
                compare["currency"] = price["currency"]
                low, high = price.get("amount"), compare.get("amount")
                if _number(low) and _number(high) and high <= low:
                    compare["amount"] = int(low) + 1
    return case


def _order_dates(query: dict[str, Any]) -> None:
    """An order listing's `from` is not after its `to`, and the range spans at most LISTING_DAYS
    (orders refuses either with 422, as its document describes: staff lists walk the range day by
    day)."""
    try:
        low, high = date.fromisoformat(str(query["from"])), date.fromisoformat(str(query["to"]))
    except (KeyError, ValueError):
        try:
            low = date.fromisoformat(str(query["from"]))
        except (KeyError, ValueError):
            return
        high = low
    low, high = min(low, high), max(low, high)
    query["from"], query["to"] = low.isoformat(), min(high, low + LISTING_DAYS).isoformat()


def _priced(variant: dict[str, Any]) -> bool:
    return isinstance(variant.get("price"), dict) and "currency" in variant["price"]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
