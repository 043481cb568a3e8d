"""What build_app's options own: typed settings, the OpenAPI route, idempotency records, the outbox relay."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import marshmallow
from aiohttp import web
from aiohttp.test_utils import TestClient
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from pymongo.asynchronous.database import AsyncDatabase

from shopkit import broker
from shopkit.app import Api, build_app
from shopkit.auth import public
from shopkit.events import Event, EventStore
from shopkit.idempotency import COLLECTION as IDEMPOTENCY_COLLECTION
from shopkit.keys import DB
from shopkit.openapi import Operation
from shopkit.settings import KitSettings, env, load

Serve = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class PingSettings(KitSettings):
    greeting: str = env("GREETING", "hello", help="what the ping answers")


SETTINGS = web.AppKey("ping.settings", PingSettings)
READY = web.AppKey("ready", asyncio.Event)


class NoteSchema(marshmallow.Schema):
    text = marshmallow.fields.String(required=True)


def settings_for(service_env: dict[str, str], service: str) -> PingSettings:
    return load(PingSettings, {**service_env, "SERVICE_NAME": service, "GREETING": "hi"})


async def test_handlers_read_the_services_own_settings_through_its_typed_key(
    serve: Serve, service_env: dict[str, str]
) -> None:
    app = build_app(settings_for(service_env, "ping"), settings_key=SETTINGS, events=False)

    @public
    async def ping(request: web.Request) -> web.Response:
        return web.json_response({"greeting": request.app[SETTINGS].greeting})

    app.router.add_get("/ping", ping)
    client = await serve(app)

    assert await (await client.get("/ping")).json() == {"greeting": "hi"}


async def test_the_openapi_document_describes_routes_added_after_build_app(
    serve: Serve, service_env: dict[str, str]
) -> None:
    # given a service that adds a dynamic route which would also match `openapi.json`
    api = Api("ping", operations={"add_note": Operation(body=NoteSchema, statuses=(201,))})
    app = build_app(settings_for(service_env, "ping"), api=api, events=False)

    @public
    async def add_note(request: web.Request) -> web.Response:
        return web.json_response({}, status=201)

    @public
    async def show_note(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["note_id"]})

    app.router.add_post("/api/v1/ping", add_note)
    app.router.add_get("/api/v1/ping/{note_id}", show_note)
    client = await serve(app)

    # when the document is read
    response = await client.get("/api/v1/ping/openapi.json")

    # then it is served, not taken for a note id, and describes the service's routes and bodies
    assert response.status == 200
    paths = (await response.json())["paths"]
    assert paths["/api/v1/ping"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "/api/v1/ping/{note_id}" in paths


async def test_idempotency_keys_get_their_indexes_at_startup(
    serve: Serve, service_env: dict[str, str], db: AsyncDatabase[Any]
) -> None:
    app = build_app(settings_for(service_env, "ping"), idempotency_keys=True, events=False)
    await serve(app)

    cursor = await db[IDEMPOTENCY_COLLECTION].list_indexes()
    indexed = {tuple(index["key"]) async for index in cursor}
    assert ("record",) in indexed


async def test_the_outbox_relays_events_written_while_the_service_starts_once_it_has_started(
    serve: Serve, service_env: dict[str, str], nats_client: Nats, db: AsyncDatabase[Any]
) -> None:
    service = "t" + uuid.uuid4().hex[:12]
    published: list[dict[str, Any]] = []
    arrived = asyncio.Event()
    seen_ready: list[bool] = []

    async def received(message: Msg) -> None:
        published.append(json.loads(message.data))
        arrived.set()

    subscription = await nats_client.subscribe(broker.subject(service, ">"), cb=received)

    async def before_publish(app: web.Application, event: Event) -> None:
        # The service's own contexts are all up before the relay calls back into the service.
        seen_ready.append(app[READY].is_set())

    # given a service whose own context, appended after build_app, writes an event at startup
    app = build_app(settings_for(service_env, service), outbox=True, before_publish=before_publish)

    async def service_ctx(app: web.Application) -> AsyncIterator[None]:
        app[READY] = asyncio.Event()
        await EventStore(app[DB]).append("note-1", 0, "note.added", {"text": "first"})
        await asyncio.sleep(1.5)  # a slow start, longer than a relay step: it must not run ahead
        app[READY].set()
        yield

    app.cleanup_ctx.append(service_ctx)
    try:
        # when the service runs
        await serve(app)

        # then the event reaches the broker, and the hook ran only once startup was over
        await asyncio.wait_for(arrived.wait(), timeout=10)
        assert published[0]["type"] == "note.added"
        assert seen_ready == [True]
        # and the event store's unique index was made by the kit
        indexes = {index["name"] async for index in await db["events"].list_indexes()}
        assert "id" in indexes
    finally:
        await subscription.unsubscribe()
        await nats_client.jetstream().delete_stream(broker.stream_name(service))


def test_main_exits_with_every_settings_problem_and_no_traceback() -> None:
    program = (
        "from shopkit.app import main\n"
        "from shopkit.settings import KitSettings\n"
        "main(KitSettings, lambda settings: None)\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env={}, timeout=30
    )

    assert finished.returncode == 1
    assert "SERVICE_NAME is required" in finished.stderr
    assert "MONGO_URL is required" in finished.stderr
    assert "Traceback" not in finished.stderr


async def test_prepare_makes_the_indexes_and_the_stream_then_exits_without_serving(
    service_env: dict[str, str], db: AsyncDatabase[Any], nats_client: Nats
) -> None:
    # given a service with an event store, an outbox relay and idempotency records
    service = "t" + uuid.uuid4().hex[:12]
    program = (
        "from shopkit.app import build_app, main\n"
        "from shopkit.settings import KitSettings\n"
        "main(KitSettings, lambda s: build_app(s, outbox=True, idempotency_keys=True))\n"
    )
    env = {**service_env, "SERVICE_NAME": service, "PORT": "1"}  # a port it could never bind

    # when a deployment's one-off job runs it with --prepare
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", program, "--prepare", env=env, stderr=subprocess.PIPE
    )
    _, errors = await asyncio.wait_for(process.communicate(), timeout=60)

    # then it exits at once, having made what the service needs before it serves
    try:
        assert process.returncode == 0, errors.decode()
        indexes = {index["name"] async for index in await db["events"].list_indexes()}
        assert "id" in indexes
        records = {
            tuple(index["key"]) async for index in await db[IDEMPOTENCY_COLLECTION].list_indexes()
        }
        assert ("record",) in records
        stream = await nats_client.jetstream().stream_info(broker.stream_name(service))
        assert stream.config.name == broker.stream_name(service)
    finally:
        await nats_client.jetstream().delete_stream(broker.stream_name(service))
