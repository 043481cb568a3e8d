"""The NATS JetStream connection and this service's stream (`shop.<service>.*`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import nats
from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.js.api import StreamConfig

from shopkit.keys import JETSTREAM, NATS, SETTINGS

__all__ = ["ensure_stream", "nats_ctx", "ping", "stream_name", "subject"]

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
