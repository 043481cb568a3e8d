"""The NATS JetStream connection and this service's stream (`shop.<service>.*`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

import nats
from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamConfig

from shopkit.keys import JETSTREAM, NATS, SETTINGS

__all__ = ["ensure_stream", "follow", "nats_ctx", "ping", "stream_name", "subject"]

log = logging.getLogger("shopkit.broker")
DEDUPE_WINDOW_SECONDS = 2 * 60 * 60


def stream_name(service: str) -> str:
    return service.upper().replace("-", "_")


def subject(service: str, event_type: str) -> str:
    """`user.registered` published by users becomes `shop.users.user.registered`."""
    return f"shop.{service}.{event_type}"


async def ensure_stream(js: nats.js.JetStreamContext, service: str) -> None:
    config = StreamConfig(
        name=stream_name(service),
        subjects=[f"shop.{service}.>"],
        duplicate_window=DEDUPE_WINDOW_SECONDS,
    )
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:
        await js.update_stream(config)


async def follow(
    js: nats.js.JetStreamContext,
    publisher: str,
    subject: str,
    received: Callable[[Msg], Awaitable[None]],
    *,
    since: datetime | None = None,
) -> nats.js.JetStreamContext.PushSubscription:
    """Feed `received` every message on `subject` (wildcards allowed) of `publisher`'s stream, from `since` (else from
    now on), in this process only: for state each instance keeps in memory (revocations, caches).

    An ordered consumer: ephemeral, in memory, recreated by the client after a gap or a reconnect,
    resuming after the last message it got, so none is skipped while the connection lives.
    """
    # The publisher's stream may not exist yet; the same config it makes.
    await ensure_stream(js, publisher)
    if since is None:
        config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
    else:
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since)
    subscription = await js.subscribe(
        subject,
        stream=stream_name(publisher),
        cb=received,
        ordered_consumer=True,
        idle_heartbeat=5.0,
        config=config,
    )
    # nats-py recreates the consumer from this same config, by start sequence but with the start
    # time left in it, which the server refuses (a BadRequestError, and the feed would stop).
    config.opt_start_time = None
    return subscription


async def connect(url: str, name: str) -> NatsClient:
    async def disconnected() -> None:
        log.warning("disconnected from NATS")

    async def reconnected() -> None:
        log.info("reconnected to NATS")

    async def error(exc: Exception) -> None:
        log.warning("NATS error: %s", exc)

    return await nats.connect(
        url,
        name=name,
        connect_timeout=3,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )


async def nats_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    connection = await connect(settings.nats_url, settings.service_name)
    app[NATS] = connection
    app[JETSTREAM] = connection.jetstream(timeout=5)
    await ensure_stream(app[JETSTREAM], settings.service_name)
    try:
        yield
    finally:
        try:
            await asyncio.wait_for(connection.drain(), timeout=5)
        except (TimeoutError, nats.errors.Error):
            await connection.close()


async def ping(app: web.Application) -> None:
    if not app[NATS].is_connected:
        raise ConnectionError("not connected to NATS")
