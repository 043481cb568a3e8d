"""Every query the notifications service makes is served by an index, read from PostgreSQL's own plans."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsClient
from notifications_support import (
    API,
    Mailbox,
    Notifications,
    address,
    eventually,
    new_id,
    paid,
    placed,
)

from notifications import unsubscribe
from notifications.model import Topic
from shopkit.testing.explain import KIT_READ_WHOLE, ExplainedMongo

READ_WHOLE = {
    **KIT_READ_WHOLE,
    "campaigns": "staff's campaigns, listed newest first: a handful a week",
}


async def test_every_query_of_a_notifications_journey_is_served_by_an_index(
    start_notifications: Callable[..., Awaitable[Notifications]],
    explained_mongo: ExplainedMongo,
    database_name: str,
    nats_client: NatsClient,
    mailbox: Mailbox,
) -> None:
    notifications = await start_notifications(MONGO_URL=explained_mongo.url)
    staff = notifications.staff()
    # A customer registers, gives a phone and opts into promotions; orders, pays, gets it shipped.
    user_id, email, phone = new_id("u"), address("idx"), "+4915112345670"
    await notifications.publish(
        nats_client,
        "users",
        "user.registered",
        {"user_id": user_id, "email": email, "name": "Ix", "roles": ["customer"]},
    )
    customer = notifications.customer(user_id)
    await notifications.client.patch(
        f"{API}/preferences",
        json={"phone": phone, "topics": {"promotions": {"email": True}}},
        headers=customer,
    )
    order_id = new_id("ord")
    await notifications.publish(
        nats_client, "orders", "order.placed", placed(order_id, email, user_id=user_id)
    )
    await notifications.publish(nats_client, "orders", "order.paid", paid(order_id, email))
    await notifications.publish(
        nats_client,
        "orders",
        "order.shipped",
        {"order_id": order_id, "carrier": "UPS", "tracking_number": "1Z", "actor": "s"},
    )
    await mailbox.arrived(email, count=2)
    await notifications.settled(phone)
    # A campaign to them, and the unsubscribe link; staff read the log, suppress, lift, retry.
    campaign = await notifications.client.post(
        "/api/v1/promotions",
        json={"name": "n", "subject": "s", "html": "<p>{{ name }}</p>", "text": "{{ name }}"},
        headers={**staff, "Idempotency-Key": uuid.uuid4().hex},
    )
    campaign_id = (await campaign.json())["id"]
    await notifications.client.post(
        f"/api/v1/promotions/{campaign_id}/send",
        json={},
        headers={**staff, "Idempotency-Key": uuid.uuid4().hex},
    )

    async def campaign_sent() -> bool:
        answer = await notifications.client.get(f"/api/v1/promotions/{campaign_id}", headers=staff)
        return bool((await answer.json())["state"] == "sent")

    await eventually(campaign_sent)
    await notifications.client.get("/api/v1/promotions", headers=staff)
    token = unsubscribe.sign("local-unsubscribe-secret", user_id, Topic.PROMOTIONS)
    await notifications.client.post(f"{API}/unsubscribe/{token}")
    await notifications.deliveries(recipient=email)
    await notifications.deliveries(template="order_confirmation")
    dead = await notifications.deliveries(status="dead")
    added = await notifications.client.post(
        f"{API}/suppressions", json={"channel": "email", "address": email}, headers=staff
    )
    await notifications.client.delete(
        f"{API}/suppressions/{(await added.json())['id']}", headers=staff
    )
    assert dead == []

    scans = explained_mongo.unexpected(database_name, READ_WHOLE)
    assert scans == [], "\n".join(map(str, scans))
