"""The store against FerretDB: what a full dispatch batch asks of it in one go."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from notifications.model import Channel, Delivery, Status, Topic
from notifications.store import NotificationStore
from shopkit import clock


async def test_a_batch_of_more_deliveries_than_ferretdb_has_connections_is_updated(
    db: AsyncDatabase[Any],
) -> None:
    # given 120 pending deliveries (FerretDB keeps 50 connections to PostgreSQL)
    store = NotificationStore(db)
    now = clock.now()
    deliveries = [
        Delivery(
            id=f"batch:{n:03d}",
            template="campaign",
            topic=Topic.PROMOTIONS,
            channel=Channel.EMAIL,
            to=f"reader{n}@example.com",
            status=Status.PENDING,
            due_at=now,
            created_at=now,
        )
        for n in range(120)
    ]
    await store.record(deliveries)

    # when the dispatcher records all their outcomes at once
    await store.update({x.id: {"status": Status.SENT.value, "sent_at": now} for x in deliveries})

    # then every one of them is sent, and the database still answers
    assert await store.count({"status": Status.SENT.value}) == 120
    assert await store.in_status(Status.PENDING) == []
