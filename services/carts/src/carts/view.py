"""A cart as its customer sees it: each line at its live price, the totals, and what stops a checkout.

Prices and stock come from the quotes (`pricing`); a line whose SKU has no quote yet (products did
not answer) shows the price its customer last saw, and the cart says its prices are stale. Nothing
leaves the cart silently: a line no longer for sale, short of stock or in another currency stays,
flagged with a problem, and the cart is not ready for checkout while any problem remains.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from carts.carts import Held
from carts.model import Cart, Detail, Line
from carts.pricing import Quote, Quotes
from shopkit import clock
from shopkit.money import Money


def present(held: Held | None, quotes: Quotes, default_currency: str) -> dict[str, Any]:
    cart = held.cart if held is not None else Cart()
    currency = cart.currency or default_currency
    lines = [_line(line, quotes.found.get(line.sku), currency) for line in cart.lines]
    subtotal = sum(
        (
            line["line_total"]["amount"]
            for line in lines
            if line["line_total"]["currency"] == currency
        ),
        0,
    )
    problems = [{"sku": line["sku"], **problem} for line in lines for problem in line["problems"]]
    total = Money(subtotal, currency).to_json()
    return {
        "id": held.id if held is not None else None,
        "version": cart.version,
        "currency": currency,
        "lines": lines,
        "item_count": sum(line.quantity for line in cart.lines),
        "subtotal": total,
        "adjustments": [],
        "total": total,
        "note": cart.details.get(Detail.NOTE),
        "email": cart.details.get(Detail.EMAIL),
        "ship_to_country": cart.details.get(Detail.SHIP_TO_COUNTRY),
        "problems": problems,
        "checkout_ready": bool(cart.lines) and not problems,
        "prices_stale": quotes.stale or any(line["price_stale"] for line in lines),
        "checkout": (
            {"order_id": cart.checkout.order_id, "expires_at": _time(cart.checkout.expires_at)}
            if cart.checkout is not None
            else None
        ),
        "created_at": _time(cart.created_at),
        "updated_at": _time(cart.updated_at),
    }


def _line(line: Line, quote: Quote | None, currency: str) -> dict[str, Any]:
    problems: list[dict[str, Any]] = []
    price, title, available = line.price, line.title, None
    if quote is not None and not quote.for_sale:
        problems.append({"code": "unavailable", "detail": "no longer for sale"})
    elif quote is not None and quote.price is not None:
        price, title, available = quote.price, quote.title or title, quote.available
    if price.currency != currency:
        problems.append(
            {"code": "currency_mismatch", "detail": f"priced in {price.currency}, not {currency}"}
        )
    if available is not None and available < line.quantity:
        problems.append(
            {
                "code": "out_of_stock" if available <= 0 else "insufficient_stock",
                "detail": f"{max(available, 0)} available",
                "available": max(available, 0),
            }
        )
    changed = price != line.price and quote is not None and quote.for_sale
    unit_price = {"amount": price.amount, "currency": price.currency}
    return {
        "sku": line.sku,
        "title": title,
        "quantity": line.quantity,
        "unit_price": unit_price,
        "line_total": {"amount": price.amount * line.quantity, "currency": price.currency},
        "price_changed": {"from": line.price.to_json(), "to": unit_price} if changed else None,
        "price_stale": quote is None,
        "available": available,
        "problems": problems,
        "added_at": _time(line.added_at),
    }


@functools.lru_cache(maxsize=4096)
def _time(moment: datetime | None) -> str | None:
    # Cached: a cart's lines keep their moments from read to read.
    return clock.rfc3339(moment) if moment is not None else None
