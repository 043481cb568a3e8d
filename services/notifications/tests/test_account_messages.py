"""users' events become security notices, and every later order event its customer message."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NatsClient
from notifications_support import Mailbox, Notifications, address, new_id, placed


async def test_a_password_change_sends_a_security_notice(
    notifications: Notifications, nats_client: NatsClient, mailbox: Mailbox
) -> None:
    email = address("owner")

    await notifications.publish(
        nats_client, "users", "user.password_changed", {"user_id": new_id("u"), "email": email}
    )

    [mail] = await mailbox.arrived(email)
    assert mail["Subject"] == "Your password was changed"


async def test_an_email_change_is_told_to_the_address_given_up(
    notifications: Notifications, nats_client: NatsClient, mailbox: Mailbox
) -> None:
    user_id, old, new = new_id("u"), address("old"), address("new")
    await notifications.publish(
        nats_client,
        "users",
        "user.registered",
        {"user_id": user_id, "email": old, "name": "Ada", "roles": ["customer"]},
    )

    await notifications.publish(
        nats_client,
        "users",
        "user.email_changed",
        {"user_id": user_id, "old_email": old, "new_email": new},
    )

    [mail] = await mailbox.arrived(old)
    text = (await mailbox.message(mail["ID"]))["Text"]
    assert f"changed from {old} to {new}" in text
    assert await mailbox.to(new) == []


@pytest.mark.parametrize(
    ("event_type", "data", "subject"),
    [
        ("order.delivered", {"actor": "staff-1"}, "Order {number} was delivered"),
        (
            "order.cancelled",
            {"cart_id": "c", "reason": "customer", "actor": "u"},
            "Order {number} was cancelled",
        ),
        (
            "order.refunded",
            {
                "refund_id": "r1",
                "amount": 1250,
                "currency": "EUR",
                "reason": "damaged",
                "actor": "s",
                "refunded_total": 1250,
            },
            "Refund for order {number}",
        ),
    ],
)
async def test_each_later_order_event_tells_the_customer(
    notifications: Notifications,
    nats_client: NatsClient,
    mailbox: Mailbox,
    event_type: str,
    data: dict[str, object],
    subject: str,
) -> None:
    email, order_id = address("buyer"), new_id("ord")
    await notifications.publish(nats_client, "orders", "order.placed", placed(order_id, email))

    await notifications.publish(nats_client, "orders", event_type, {"order_id": order_id, **data})

    [mail] = await mailbox.arrived(email)
    assert mail["Subject"] == subject.format(number="SO-" + order_id[-6:].upper())


async def test_low_stock_is_told_to_the_staff(
    start_notifications: object, nats_client: NatsClient, mailbox: Mailbox
) -> None:
    staff = address("warehouse")
    notifications = await start_notifications(STAFF_EMAILS=staff)  # type: ignore[operator]
    low = {
        "sku": "MUG-01",
        "on_hand": 7,
        "reserved": 4,
        "available": 3,
        "threshold": 5,
        "ledger_seq": 12,
    }

    await notifications.publish(nats_client, "products", "stock.low", low)

    [mail] = await mailbox.arrived(staff)
    assert mail["Subject"] == "Low stock: MUG-01"
