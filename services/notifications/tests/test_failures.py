"""Failures: transient ones are retried until they pass or dead-letter, permanent ones suppress."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from nats.aio.client import Client as NatsClient
from notifications_support import (
    API,
    Mailbox,
    Notifications,
    address,
    eventually,
    new_id,
    placed,
)

from notifications.keys import DELIVERIES, DISPATCHER
from notifications.model import Channel, Status
from notifications.samples import SAMPLES
from notifications.triggers import delivery_for_test
from shopkit import clock
from shopkit.testing import peers
from shopkit.testing.plugin import MailServer

SHIPPED = {"carrier": "DHL", "tracking_number": "JD0146", "actor": "staff-1"}


async def _cancel(notifications: Notifications, nats: NatsClient, email: str, **more: str) -> str:
    order_id = new_id("ord")
    await notifications.publish(nats, "orders", "order.placed", placed(order_id, email, **more))
    await notifications.publish(
        nats,
        "orders",
        "order.cancelled",
        {"order_id": order_id, "cart_id": "c", "reason": "customer", "actor": "u"},
    )
    return order_id


async def test_an_smtp_server_down_at_first_is_retried_and_the_mail_arrives_once_it_is_up(
    start_notifications: Callable[..., Awaitable[Notifications]],
    nats_client: NatsClient,
    tmp_path: Path,
) -> None:
    # given an SMTP server that is not up yet
    smtp_port, api_port = peers.free_port(), peers.free_port()
    notifications = await start_notifications(SMTP_PORT=str(smtp_port), SEND_ATTEMPTS="50")
    email = address("patient")
    await _cancel(notifications, nats_client, email)
    await eventually(lambda: _failed_once(notifications, email))

    # when it comes up
    mailpit = peers.mailpit(tmp_path, smtp_port, api_port).start()
    try:
        # then the mail arrives, once
        arrived = await Mailbox(
            MailServer("127.0.0.1", smtp_port, f"http://127.0.0.1:{api_port}")
        ).arrived(email)
        assert len(arrived) == 1
        [delivery] = await notifications.settled(email)
        assert delivery["status"] == "sent"
        assert delivery["attempts"] >= 2
    finally:
        mailpit.stop()


async def _failed_once(notifications: Notifications, email: str) -> bool:
    found = await notifications.deliveries(recipient=email)
    return bool(found) and found[0]["attempts"] >= 1 and found[0]["error"] is not None


async def test_a_message_past_its_attempts_is_dead_lettered_and_staff_can_send_it_again(
    start_notifications: Callable[..., Awaitable[Notifications]],
    nats_client: NatsClient,
    mail_server: MailServer,
    mailbox: Mailbox,
) -> None:
    # given an instance whose SMTP server never answers, and one that reaches Mailpit
    broken = await start_notifications(SMTP_PORT=str(peers.free_port()), SEND_ATTEMPTS="2")
    email = address("dead")
    await _cancel(broken, nats_client, email)

    # when its attempts run out
    await eventually(lambda: _in_status(broken, email, "dead"))
    [dead] = await broken.deliveries(status="dead", recipient=email)
    assert dead["attempts"] == 2
    assert "smtp-unreachable" in dead["error"]
    assert dead["recipient"].startswith(email[0] + "***@")

    # then staff retry it where SMTP works, and it arrives once
    working = await start_notifications(SMTP_PORT=str(mail_server.smtp_port), SEND_ATTEMPTS="2")
    retried = await working.client.post(
        f"{API}/deliveries/{dead['id']}/retry",
        headers={**working.staff(), "Idempotency-Key": new_id("key")},
    )
    assert retried.status == 202, await retried.text()
    assert len(await mailbox.arrived(email)) == 1


async def _in_status(notifications: Notifications, email: str, status: str) -> bool:
    found = await notifications.deliveries(recipient=email)
    return bool(found) and found[0]["status"] == status


async def test_an_sms_twilio_refuses_as_invalid_is_permanent_not_retried_and_suppresses_the_number(
    notifications: Notifications, nats_client: NatsClient
) -> None:
    # given a customer whose phone number Twilio says is invalid
    user_id, email, phone = new_id("u"), address("sms"), "+15005550001"
    answer = await notifications.client.patch(
        f"{API}/preferences", json={"phone": phone}, headers=notifications.customer(user_id)
    )
    assert answer.status == 200
    order_id = new_id("ord")
    await notifications.publish(
        nats_client, "orders", "order.placed", placed(order_id, email, user_id=user_id)
    )

    # when the order ships, and is delivered
    await notifications.publish(
        nats_client, "orders", "order.shipped", {"order_id": order_id, **SHIPPED}
    )
    [refused] = await notifications.settled(phone)
    await notifications.publish(
        nats_client, "orders", "order.delivered", {"order_id": order_id, "actor": "s"}
    )

    # then the first SMS failed for good after one attempt, and the second was not even tried
    assert (refused["status"], refused["attempts"]) == ("failed", 1)
    assert "twilio-21211" in refused["error"]
    later = await notifications.settled(phone, count=2)
    assert sorted(x["status"] for x in later) == ["failed", "suppressed"]


async def test_sms_past_the_hourly_limit_of_a_phone_are_dropped(
    start_notifications: Callable[..., Awaitable[Notifications]], nats_client: NatsClient
) -> None:
    notifications = await start_notifications(SMS_PER_HOUR="1")
    user_id, email, phone = new_id("u"), address("chatty"), "+4915112345679"
    await notifications.client.patch(
        f"{API}/preferences", json={"phone": phone}, headers=notifications.customer(user_id)
    )
    order_id = new_id("ord")
    await notifications.publish(
        nats_client, "orders", "order.placed", placed(order_id, email, user_id=user_id)
    )

    await notifications.publish(
        nats_client, "orders", "order.shipped", {"order_id": order_id, **SHIPPED}
    )
    await notifications.settled(phone)
    await notifications.publish(
        nats_client, "orders", "order.delivered", {"order_id": order_id, "actor": "s"}
    )

    found = await notifications.settled(phone, count=2)
    assert sorted(x["status"] for x in found) == ["rate_limited", "sent"]


async def test_an_address_suppressed_by_staff_after_a_hard_bounce_gets_nothing_more(
    notifications: Notifications, nats_client: NatsClient, mailbox: Mailbox
) -> None:
    email = address("bounced")
    answer = await notifications.client.post(
        f"{API}/suppressions",
        json={"channel": "email", "address": email},
        headers=notifications.staff(),
    )
    assert answer.status == 201
    suppression = await answer.json()

    await _cancel(notifications, nats_client, email)

    [delivery] = await notifications.settled(email)
    assert delivery["status"] == "suppressed"
    assert await mailbox.to(email) == []
    lifted = await notifications.client.delete(
        f"{API}/suppressions/{suppression['id']}", headers=notifications.staff()
    )
    assert lifted.status == 204


async def test_a_message_left_mid_attempt_by_a_dead_instance_is_sent_again_and_counted(
    notifications: Notifications, mailbox: Mailbox
) -> None:
    # given a delivery an instance marked `sending` and died with, its window long closed
    email = address("orphan")
    d = notifications.client.app[DELIVERIES]
    delivery = delivery_for_test(
        new_id("test"), "order_delivered", Channel.EMAIL, email, SAMPLES["order_delivered"], None
    )
    await d.store.record([replace(delivery, status=Status.SENDING, attempts=1)])
    await d.store.update({delivery.id: {"until": clock.now() - timedelta(minutes=5)}})

    # when another instance looks for such leftovers
    await notifications.client.app[DISPATCHER].recover()
    d.recorded.set()

    # then it is sent again, and counted as a possible duplicate
    assert len(await mailbox.arrived(email)) == 1
    metrics = await (await notifications.client.get("/metrics")).text()
    assert 'notifications_possible_duplicates_total{channel="email"} 1.0' in metrics
    [entry] = await notifications.settled(email)
    assert (entry["status"], entry["attempts"]) == ("sent", 2)
