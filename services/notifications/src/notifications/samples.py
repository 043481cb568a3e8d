"""Sample data for each packaged template: what staff preview and test messages render with."""

from __future__ import annotations

from typing import Any

SAMPLE_ORDER: dict[str, Any] = {
    "order_id": "sample-order",
    "number": "SO-2026-000123",
    "email": "sam@example.com",
    "currency": "EUR",
    "lines": [
        {
            "sku": "TEE-BLK-M",
            "title": "Black tee, M",
            "quantity": 2,
            "unit_price": 1999,
            "total": 3998,
        },
        {"sku": "MUG-01", "title": "Mug", "quantity": 1, "unit_price": 1250, "total": 1250},
    ],
    "subtotal": 5248,
    "shipping_total": 495,
    "tax_total": 917,
    "total": 5743,
    "tax_inclusive": True,
}
ORDER = {"order": SAMPLE_ORDER, "order_url": "https://shop.example/orders/sample-order"}
WHEN = {"at": "2026-12-02T10:00:00Z", "expires_at": "2026-12-03T10:00:00Z"}

SAMPLES: dict[str, dict[str, Any]] = {
    "email_verification": {
        "name": "Sam",
        "email": "sam@example.com",
        "link": "https://shop.example/verify-email?token=sample",
        **WHEN,
    },
    "password_reset": {"link": "https://shop.example/reset-password?token=sample", **WHEN},
    "password_changed": WHEN,
    "email_changed": {"old_email": "sam@example.com", "new_email": "sam@example.org", **WHEN},
    "order_confirmation": ORDER,
    "payment_failed": ORDER,
    "order_shipped": {
        **ORDER,
        "carrier": "DHL",
        "tracking_number": "JD014600006281230704",
        "tracking_url": "https://www.dhl.com/global-en/home/tracking.html?tracking-id=JD014600006281230704",
    },
    "order_delivered": ORDER,
    "order_cancelled": ORDER,
    "order_refunded": {**ORDER, "amount": 1250, "currency": "EUR"},
    "staff_new_order": ORDER,
    "staff_stock_low": {
        "sku": "MUG-01",
        "on_hand": 7,
        "reserved": 4,
        "available": 3,
        "threshold": 5,
    },
}
