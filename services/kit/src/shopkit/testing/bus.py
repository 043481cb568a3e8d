"""What a service published, read back from JetStream: the bus as its consumers see it."""

from __future__ import annotations

import json
from typing import Any

from nats.aio.client import Client as Nats

from shopkit import broker

__all__ = ["published"]


async def published(
    nats: Nats, service: str, event_type: str, *, wait: float = 0.3, **data: Any
) -> list[dict[str, Any]]:
    """Every `event_type` `service` published whose payload holds `data` (`order_id="..."`), in
    order; read until the stream has had nothing more for `wait` seconds."""
    subscription = await nats.jetstream().subscribe(
        broker.subject(service, event_type),
        stream=broker.stream_name(service),
        ordered_consumer=True,
    )
    found: list[dict[str, Any]] = []
    try:
        while True:
            try:
                message = await subscription.next_msg(timeout=wait)
            except TimeoutError:
                break
            event: dict[str, Any] = json.loads(message.data)
            if all(event["data"].get(name) == value for name, value in data.items()):
                found.append(event)
    finally:
        await subscription.unsubscribe()
    return found
