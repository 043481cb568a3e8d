"""Campaigns: staff only, to every opted-in customer once, with a one-click unsubscribe."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as NatsClient
from notifications_support import API, Mailbox, Notifications, address, eventually, new_id

from notifications import campaigns, unsubscribe
from notifications.keys import DELIVERIES
from notifications.model import Topic
from shopkit import clock

PROMOTIONS = "/api/v1/promotions"
CAMPAIGN = {
    "name": "Winter sale",
    "subject": "{{ name }}, the winter sale starts",
    "html": '<p>Hello {{ name }}</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
    "text": "Hello {{ name }}\n\nUnsubscribe: {{ unsubscribe_url }}",
}


async def _customer(
    notifications: Notifications,
    nats: NatsClient,
    *,
    promotions: bool | None,
    user_id: str | None = None,
) -> tuple[str, str, dict[str, str]]:
    """A registered customer (users' event), opted in or out of promotions or never asked."""
    user_id, email = user_id or new_id("u"), address("fan")
    await notifications.publish(
        nats,
        "users",
        "user.registered",
        {"user_id": user_id, "email": email, "name": "Fan", "roles": ["customer"]},
    )
    if promotions is not None:
        await _set_promotions(notifications, user_id, promotions)
    return user_id, email, notifications.customer(user_id)


async def _set_promotions(notifications: Notifications, user_id: str, on: bool) -> None:
    answer = await notifications.client.patch(
        f"{API}/preferences",
        json={"topics": {"promotions": {"email": on}}},
        headers=notifications.customer(user_id),
    )
    assert answer.status == 200


async def _create(notifications: Notifications, **campaign: str) -> dict[str, Any]:
    answer = await notifications.client.post(
        PROMOTIONS,
        json={**CAMPAIGN, **campaign},
        headers={**notifications.staff(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert answer.status == 201, await answer.text()
    body: dict[str, Any] = await answer.json()
    return body


async def _send(
    notifications: Notifications, campaign_id: str, rate: float = 100, key: str | None = None
) -> Any:
    return await notifications.client.post(
        f"{PROMOTIONS}/{campaign_id}/send",
        json={"rate": rate},
        headers={**notifications.staff(), "Idempotency-Key": key or uuid.uuid4().hex},
    )


async def test_a_customer_cannot_create_or_send_campaigns(notifications: Notifications) -> None:
    customer = {**notifications.customer(new_id("u")), "Idempotency-Key": uuid.uuid4().hex}

    created = await notifications.client.post(PROMOTIONS, json=CAMPAIGN, headers=customer)
    sent = await notifications.client.post(f"{PROMOTIONS}/any/send", json={}, headers=customer)

    assert (created.status, sent.status) == (403, 403)


async def test_a_campaign_reaches_the_opted_in_once_with_one_click_unsubscribe_headers(
    notifications: Notifications, nats_client: NatsClient, mailbox: Mailbox
) -> None:
    # given one customer who opted in, one who turned promotions off and one never asked
    _, fan, _ = await _customer(notifications, nats_client, promotions=True)
    _, off, _ = await _customer(notifications, nats_client, promotions=False)
    _, silent, _ = await _customer(notifications, nats_client, promotions=None)
    campaign = await _create(notifications)
    await _wait_for_recipients(notifications, fan)

    # when staff send it, twice, with two keys
    first = await _send(notifications, campaign["id"])
    second = await _send(notifications, campaign["id"])

    # then the opted-in customer gets it once, with RFC 8058's headers, and the others nothing
    assert (first.status, second.status) == (202, 202)
    [mail] = await mailbox.arrived(fan)
    assert mail["Subject"] == "Fan, the winter sale starts"
    headers = await mailbox.headers(mail["ID"])
    assert headers["List-Unsubscribe-Post"] == ["List-Unsubscribe=One-Click"]
    assert headers["List-Unsubscribe"][0].startswith("<http")
    assert "/api/v1/notifications/unsubscribe/" in headers["List-Unsubscribe"][0]
    assert await mailbox.to(off) == []
    assert await mailbox.to(silent) == []
    await asyncio.sleep(1)
    assert len(await mailbox.to(fan)) == 1

    # and its counts say so
    async def counted() -> bool:
        answer = await notifications.client.get(
            f"{PROMOTIONS}/{campaign['id']}", headers=notifications.staff()
        )
        body = await answer.json()
        return bool(body["state"] == "sent" and body["counts"]["sent"] == 1)

    await eventually(counted)


async def _wait_for_recipients(notifications: Notifications, email: str) -> None:
    """users' registration event reached notifications (its recipient is known)."""
    store = notifications.client.app[DELIVERIES].store

    async def known() -> bool:
        return await store.recipients.find_one({"email": email}) is not None

    await eventually(known)


async def test_the_unsubscribe_link_in_a_campaign_stops_the_rest_of_it_for_that_recipient(
    notifications: Notifications, nats_client: NatsClient, mailbox: Mailbox
) -> None:
    # given a campaign to five customers, sent slowly
    fans = [await _customer(notifications, nats_client, promotions=True) for _ in range(5)]
    last_id, last_email, _ = max(fans)
    await _wait_for_recipients(notifications, last_email)
    campaign = await _create(notifications)
    await _send(notifications, campaign["id"], rate=1)

    # when the last in line (recipients go in id order) unsubscribes while it is under way
    token = unsubscribe.sign("local-unsubscribe-secret", last_id, Topic.PROMOTIONS)
    answer = await notifications.client.post(f"{API}/unsubscribe/{token}")
    assert answer.status == 200

    # then everyone else gets it, and they do not
    for _, email, _ in fans:
        if email != last_email:
            assert len(await mailbox.arrived(email, timeout=15)) == 1
    await asyncio.sleep(1.5)
    assert await mailbox.to(last_email) == []


async def test_a_customer_whose_registration_arrives_after_the_campaign_started_still_gets_it(
    notifications: Notifications, nats_client: NatsClient, mailbox: Mailbox
) -> None:
    # given a known customer first in line, then one who opted in but whose registration has
    # not reached notifications yet
    _, first, _ = await _customer(notifications, nats_client, promotions=True, user_id=new_id("a"))
    await _wait_for_recipients(notifications, first)
    late_id, late = new_id("u"), address("late")
    await _set_promotions(notifications, late_id, True)

    # when a campaign is sent, and the registration arrives a few planner passes later
    campaign = await _create(notifications)
    assert (await _send(notifications, campaign["id"])).status == 202
    assert len(await mailbox.arrived(first)) == 1
    answer = await notifications.client.get(
        f"{PROMOTIONS}/{campaign['id']}", headers=notifications.staff()
    )
    assert (await answer.json())["state"] == "sending"
    await notifications.publish(
        nats_client,
        "users",
        "user.registered",
        {"user_id": late_id, "email": late, "name": "Late", "roles": ["customer"]},
    )

    # then the campaign reaches them too, once, and the first customer got it once
    [mail] = await mailbox.arrived(late)
    assert mail["Subject"] == "Late, the winter sale starts"
    assert len(await mailbox.to(first)) == 1


async def test_an_opted_in_user_never_known_is_skipped_once_the_wait_is_over(
    notifications: Notifications, nats_client: NatsClient, mailbox: Mailbox
) -> None:
    # given an opt-in whose user never became known, first in line, and a known customer
    await _set_promotions(notifications, new_id("a"), True)
    _, fan, _ = await _customer(notifications, nats_client, promotions=True)
    await _wait_for_recipients(notifications, fan)

    # when a campaign has been under way for longer than the planner waits for recipients
    campaign = await _create(notifications)
    assert (await _send(notifications, campaign["id"])).status == 202
    store = notifications.client.app[DELIVERIES].store
    long_ago = clock.now() - campaigns.RECIPIENT_WAIT
    await store.sends.update_one({"_id": campaign["id"]}, {"$set": {"started_at": long_ago}})

    # then the known customer gets it: the unknown one holds nothing up
    assert len(await mailbox.arrived(fan)) == 1


async def test_a_broken_campaign_template_is_refused_and_a_draft_previews(
    notifications: Notifications,
) -> None:
    broken = await notifications.client.post(
        PROMOTIONS,
        json={**CAMPAIGN, "text": "Hello {{ name "},
        headers={**notifications.staff(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert broken.status == 422

    campaign = await _create(notifications)
    preview = await notifications.client.post(
        f"{PROMOTIONS}/{campaign['id']}/preview",
        json={"locale": "fr"},
        headers=notifications.staff(),
    )
    assert preview.status == 200
    body = await preview.json()
    assert body["subject"] == "Sam Sample, the winter sale starts"
    assert "/api/v1/notifications/unsubscribe/" in body["text"]


async def test_a_campaign_being_sent_can_no_longer_change(
    start_notifications: Callable[..., Awaitable[Notifications]],
) -> None:
    notifications = await start_notifications()
    campaign = await _create(notifications)
    await _send(notifications, campaign["id"])

    answer = await notifications.client.patch(
        f"{PROMOTIONS}/{campaign['id']}", json={"subject": "Changed"}, headers=notifications.staff()
    )

    assert answer.status == 409
