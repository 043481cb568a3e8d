"""Helpers shared by the products tests: tokens for each role and a valid product body."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp.test_utils import TestClient

from shopkit.testing.tokens import TokenFactory

Client = TestClient[Any, Any]

PHONE = {
    "slug": "iphone-15",
    "name": "Apple iPhone 15",
    "description": "A phone with a very good camera.",
    "brand": "Apple",
    "attributes": {"material": "aluminium"},
    "images": ["https://images.example.com/iphone-15.jpg"],
    "status": "published",
    "variants": [
        {
            "sku": "IP15-128-BLK",
            "price": {"amount": 79900, "currency": "EUR"},
            "attributes": {"colour": "black", "storage": 128},
        },
        {
            "sku": "IP15-256-BLU",
            "price": {"amount": 89900, "currency": "EUR"},
            "attributes": {"colour": "blue", "storage": 256},
        },
    ],
}


def product(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(PHONE)
    body.update(changes)
    return body


class Roles:
    def __init__(self, tokens: TokenFactory) -> None:
        self.staff = tokens.header("staff-1", "staff")
        self.admin = tokens.header("admin-1", "admin")
        self.customer = tokens.header("customer-1", "customer")
        self.service = tokens.header("service:orders", "service")
