"""Order and payment events become customer messages: once each, with the order's lines."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from nats.aio.client import Client as NatsClient
from notifications_support import Mailbox, Notifications, address, new_id, paid, placed

from shopkit import clock


async def test_paying_an_order_delivers_exactly_one_confirmation_with_its_lines_and_total(
    notifications: Notifications, nats_client: NatsClient, mailbox: Mailbox
) -> None:
    # given a placed order
    email, order_id = address("buyer"), new_id("ord")
    await notifications.publish(nats_client, "orders", "order.placed", placed(order_id, email))

    # when it is paid
    await notifications.publish(nats_client, "orders", "order.paid", paid(order_id, email))

    # then one confirmation arrives, with each line and the total in the order's currency
    arrived = await mailbox.arrived(email)
    assert [m["Subject"] for m in arrived] == [f"Order SO-{order_id[-6:].upper()} confirmed"]
    message = await mailbox.message(arrived[0]["ID"])
    assert "2 x Black tee (TEE-BLK-M) at €19.99: €39.98" in message["Text"]
    assert "1 x Mug (MUG-01) at €12.50: €12.50" in message["Text"]
    assert "Total: €57.43" in message["Text"]
    assert "€57.43" in message["HTML"]


async def test_a_redelivered_event_sends_nothing_more_even_on_two_instances(
    start_notifications: Callable[..., Awaitable[Notifications]],
    nats_client: NatsClient,
    mailbox: Mailbox,
) -> None:
    # given two instances and a paid order
    first, _second = await start_notifications(), await start_notifications()
    email, order_id = address("twice"), new_id("ord")
    await first.publish(nats_client, "orders", "order.placed", placed(order_id, email))
    event_id = await first.publish(nats_client, "orders", "order.paid", paid(order_id, email))
    assert len(await mailbox.arrived(email)) == 1

    # when the same event comes again, past the broker's duplicate window
    await first.publish(
        nats_client,
        "orders",
        "order.paid",
        paid(order_id, email),
        event_id=event_id,
        message_id=new_id("m"),
    )

    # then nothing more is sent
    assert len(await mailbox.arrived(email, count=2, timeout=3)) == 1


async def test_a_failed_payment_sends_a_payment_failed_mail_and_never_a_confirmation(
    notifications: Notifications, nats_client: NatsClient, mailbox: Mailbox
) -> None:
    email, order_id = address("declined"), new_id("ord")
    await notifications.publish(nats_client, "orders", "order.placed", placed(order_id, email))

    await notifications.publish(
        nats_client,
        "payments",
        "payment.failed",
        {
            "order_id": order_id,
            "payment_intent_id": "pi_1",
            "amount": 5743,
            "currency": "EUR",
            "reason": "card_declined",
        },
    )

    arrived = await mailbox.arrived(email, count=2, timeout=5)
    assert [m["Subject"] for m in arrived] == [
        f"Payment for order SO-{order_id[-6:].upper()} failed"
    ]


async def test_the_staff_hear_of_each_paid_order(
    start_notifications: Callable[..., Awaitable[Notifications]],
    nats_client: NatsClient,
    mailbox: Mailbox,
) -> None:
    staff = address("staff")
    notifications = await start_notifications(STAFF_EMAILS=staff)
    email, order_id = address("buyer"), new_id("ord")
    await notifications.publish(nats_client, "orders", "order.placed", placed(order_id, email))
    await notifications.publish(nats_client, "orders", "order.paid", paid(order_id, email))

    arrived = await mailbox.arrived(staff)
    assert [m["Subject"] for m in arrived] == [f"New order SO-{order_id[-6:].upper()}: €57.43"]


async def test_shipping_sends_the_tracking_link_by_email_and_sms_to_an_opted_in_phone(
    notifications: Notifications, nats_client: NatsClient, mailbox: Mailbox
) -> None:
    # given a customer who gave a phone number, and their order
    user_id, email, order_id = new_id("u"), address("ship"), new_id("ord")
    phone = "+4915112345678"
    answer = await notifications.client.patch(
        "/api/v1/notifications/preferences",
        json={"phone": phone},
        headers=notifications.customer(user_id),
    )
    assert answer.status == 200, await answer.text()
    await notifications.publish(
        nats_client, "orders", "order.placed", placed(order_id, email, user_id=user_id)
    )

    # when it ships with DHL
    await notifications.publish(
        nats_client,
        "orders",
        "order.shipped",
        {"order_id": order_id, "carrier": "DHL", "tracking_number": "JD0146", "actor": "staff-1"},
    )

    # then the mail carries the tracking link, and an SMS went through Twilio
    arrived = await mailbox.arrived(email)
    text = (await mailbox.message(arrived[0]["ID"]))["Text"]
    assert "https://www.dhl.com/global-en/home/tracking.html?tracking-id=JD0146" in text
    sms = await notifications.settled(phone)
    assert [(x["channel"], x["status"], x["template"]) for x in sms] == [
        ("sms", "sent", "order_shipped")
    ]
    assert sms[0]["recipient"] == "+49********678"


async def test_an_event_from_long_ago_keeps_its_order_but_sends_nothing(
    notifications: Notifications, nats_client: NatsClient, mailbox: Mailbox
) -> None:
    # given a stream replayed from its start, as at the first deployment
    email, order_id = address("history"), new_id("ord")
    long_ago = clock.now() - timedelta(days=30)
    await notifications.publish(
        nats_client, "orders", "order.placed", placed(order_id, email), occurred_at=long_ago
    )
    await notifications.publish(
        nats_client, "orders", "order.paid", paid(order_id, email), occurred_at=long_ago
    )

    # when a fresh event about the same order follows
    await notifications.publish(
        nats_client, "orders", "order.delivered", {"order_id": order_id, "actor": "staff-1"}
    )

    # then only the fresh one sends, from what the old one kept
    arrived = await mailbox.arrived(email, count=2, timeout=5)
    assert [m["Subject"] for m in arrived] == [f"Order SO-{order_id[-6:].upper()} was delivered"]
