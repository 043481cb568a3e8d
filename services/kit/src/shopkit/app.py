"""The app factory every service starts from: middlewares, health, readiness, metrics and resources."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo.errors import ConnectionFailure, ExecutionTimeout

from shopkit import apm, broker, context, idempotency, logs, mongo, openapi, relay, revocations
from shopkit.answers import json_response
from shopkit.auth import PRINCIPAL, JwksKeys, KeySource, TokenVerifier, authorize, public
from shopkit.commits import AfterCommit
from shopkit.events import Event, EventStore
from shopkit.headers import (
    ALLOW,
    CONTENT_TYPE,
    REQUEST_ID,
    RETRY_AFTER,
    TRACEPARENT,
    TRACERESPONSE,
)
from shopkit.keys import (
    AFTER_COMMIT,
    APM,
    DB,
    HTTP,
    INTERNAL_OPENAPI,
    METRICS,
    OPENAPI,
    READINESS,
    REVOCATIONS,
    SETTINGS,
    VERIFIER,
)
from shopkit.metrics import Metrics
from shopkit.problems import Problem, ServiceUnavailable, for_status
from shopkit.settings import KitSettings, SettingsError, load
from shopkit.traces import parse

__all__ = ["Api", "BeforePublish", "Context", "build_app", "main", "run"]

log = logging.getLogger("shopkit.http")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}\Z")
MAX_BODY_BYTES = 1024 * 1024
SLOW_REQUEST_SECONDS = 1.0
S = TypeVar("S", bound=KitSettings)
Context = Callable[[web.Application], AsyncIterator[None]]
BeforePublish = Callable[[web.Application, Event], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Api:
    """What the kit needs to serve a service's OpenAPI documents: the public one at
    /api/v1/<name>/openapi.json and the one of its /internal/ routes at /internal/<name>/openapi.json
    (the gateway never routes /internal/); `operations` describes each handler, by name."""

    name: str
    operations: Mapping[str, openapi.Operation] = field(default_factory=dict)
    version: str = "1.0.0"


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_context(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Give every request an id (the client's when sane) and a span of the caller's trace (or of a
    new one), log it once, and count it by route template."""
    incoming = request.headers.get(REQUEST_ID, "")
    request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    with context.scope(request.headers.get(TRACEPARENT), request=request_id) as span:
        metrics = request.app[METRICS]
        settings = request.app[SETTINGS]
        started = time.perf_counter()
        status = 500
        metrics.in_flight.inc()
        try:
            response = await handler(request)
            status = response.status
            response.headers[REQUEST_ID] = request_id
            response.headers[TRACERESPONSE] = span.traceparent
            return response
        finally:
            elapsed = time.perf_counter() - started
            metrics.in_flight.dec()
            route = _route_label(request)
            metrics.requests.labels(settings.service_name, request.method, route, str(status)).inc()
            metrics.latency.labels(settings.service_name, request.method, route).observe(elapsed)
            # The gateway's access log records every request; a service logs what needs attention
            # (client errors, slow answers) and the rest only at DEBUG, keeping logging off the hot
            # path, unless told to log every request (LOG_REQUESTS).
            level = logging.INFO if settings.log_requests else logging.DEBUG
            if elapsed > SLOW_REQUEST_SECONDS:
                level = logging.WARNING
            elif status >= 400:
                level = logging.INFO
            if route not in {"/healthz", "/readyz", "/metrics"} and log.isEnabledFor(level):
                log.log(
                    level,
                    "%s %s %s",
                    request.method,
                    route,
                    status,
                    extra={
                        "http.request.method": request.method,
                        "url.path": request.path,
                        "http.response.status_code": status,
                        "event.duration": int(elapsed * 1e9),
                    },
                )


@web.middleware
async def apm_transactions(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Record the request's span as an APM transaction named for its route template (only in
    the middlewares when ELASTIC_APM_SERVER_URL is set)."""
    recorder, span = request.app[APM], context.span.get()
    if recorder is None or span is None:
        return await handler(request)
    with recorder.transaction("request", span, parse(request.headers.get(TRACEPARENT))) as ending:
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:
            # Below 400 (a redirect raised): `problems` lets it through, aiohttp answers it.
            status = error.status
            raise
        finally:
            # Elastic's conventions for HTTP transactions: `GET /route/{template}`, `HTTP 2xx`.
            ending.name = f"{request.method} {_route_label(request)}"
            ending.result = f"HTTP {status // 100}xx"
            ending.failed = status >= 500
            recorder.describe_request(request, status)


@web.middleware
async def problems(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error leaves as application/problem+json; a 500 never carries a traceback."""
    request_id = context.request_id.get()
    try:
        return await handler(request)
    except Problem as problem:
        return problem.response(request.path, request_id)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        response = for_status(error.status, error.reason).response(request.path, request_id)
        if isinstance(error, web.HTTPMethodNotAllowed):
            response.headers[ALLOW] = ",".join(sorted(error.allowed_methods))
        return response
    except asyncio.CancelledError:
        raise
    except (ConnectionFailure, ExecutionTimeout, TimeoutError):
        # The database is unreachable or overloaded: the client may retry, nothing is wrong with it.
        log.warning("dependency unavailable on %s %s", request.method, request.path, exc_info=True)
        unavailable = ServiceUnavailable("a dependency is busy or unreachable; retry shortly")
        unavailable.headers[RETRY_AFTER] = "1"
        return unavailable.response(request.path, request_id)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return Problem().response(request.path, request_id)


@web.middleware
async def authentication(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.match_info.http_exception is None:
        found = await authorize(request, request.app[VERIFIER])
        if found is not None:
            request[PRINCIPAL] = found
            context.user_id.set(found.subject)
    return await handler(request)


@public
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@public
async def readyz(request: web.Request) -> web.Response:
    failing: dict[str, str] = {}
    for name, check in request.app[READINESS]:
        try:
            await asyncio.wait_for(check(request.app), timeout=2)
        except Exception as error:
            failing[name] = error.__class__.__name__
    if failing:
        raise ServiceUnavailable("not ready: " + ", ".join(sorted(failing)), checks=failing)
    return json_response({"status": "ready"})


@public
async def metrics_endpoint(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={CONTENT_TYPE: CONTENT_TYPE_LATEST})


async def http_ctx(app: web.Application) -> AsyncIterator[None]:
    """One ClientSession per app, with keepalive pooling for calls to other services."""
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=10, connect=2),
        connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=30),
    ) as session:
        app[HTTP] = session
        yield


def _stores_ctx(*, event_store: bool, idempotency_records: bool) -> Context:
    """Indexes of the kit's own collections, made before any service context writes to them."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        if event_store:
            await EventStore(app[DB]).ensure_indexes()
        if idempotency_records:
            await idempotency.ensure_indexes(app[DB])
        yield

    return context


def _outermost(app: web.Application, ctx: Context) -> None:
    """Run `ctx` as though it were the last cleanup_ctx entry, whatever the service appends after
    build_app: it starts once every context has started (on_startup runs after cleanup_ctx) and
    stops before any of them is torn down (first in on_cleanup)."""
    running: list[AsyncIterator[None]] = []

    async def start(app: web.Application) -> None:
        iterator = aiter(ctx(app))
        await anext(iterator)
        running.append(iterator)

    async def stop(app: web.Application) -> None:
        while running:
            with contextlib.suppress(StopAsyncIteration):
                await anext(running.pop())

    app.on_startup.append(start)
    app.on_cleanup.insert(0, stop)


def _serve_openapi(app: web.Application, api: Api) -> None:
    @public
    async def openapi_document(request: web.Request) -> web.Response:
        return json_response(request.app[OPENAPI])

    @public
    async def internal_openapi_document(request: web.Request) -> web.Response:
        return json_response(request.app[INTERNAL_OPENAPI])

    operations = {**api.operations, "openapi": openapi.Operation(response={"type": "object"})}

    async def describe(app: web.Application) -> None:
        # At startup: every route the service added after build_app is in the table by then.
        for key, internal in ((OPENAPI, False), (INTERNAL_OPENAPI, True)):
            app[key] = openapi.document(
                app, title=api.name, version=api.version, operations=operations, internal=internal
            )

    # The operation keeps the name services gave it; registered first so that no dynamic route of
    # the service (/api/v1/users/{user_id}) takes `openapi.json` for an id.
    openapi_document.__name__ = "openapi"
    internal_openapi_document.__name__ = "openapi"
    app.router.add_get(f"/api/v1/{api.name}/openapi.json", openapi_document)
    app.router.add_get(
        f"{openapi.INTERNAL_PREFIX}{api.name}/openapi.json", internal_openapi_document
    )
    app.on_startup.append(describe)


def build_app(
    settings: S,
    *,
    settings_key: web.AppKey[S] | None = None,
    keys: Callable[[web.Application], KeySource] | None = None,
    database: bool = True,
    events: bool = True,
    api: Api | None = None,
    idempotency_keys: bool = False,
    outbox: bool = False,
    before_publish: BeforePublish | None = None,
) -> web.Application:
    """The kit's defaults; the service adds its own stores, background tasks and routes on top.

    `settings_key`: where handlers read the service's own settings class, typed.
    `api`: serve the OpenAPI document. `idempotency_keys`: indexes and purge of Idempotency-Key
    records. `outbox`: the event store's indexes and the relay of its outbox to JetStream (which
    calls `before_publish(app, event)` before each publish)."""
    if outbox and not (database and events):
        raise ValueError("the outbox needs the database and the broker")
    if idempotency_keys and not database:
        raise ValueError("idempotency records live in the database")
    logs.configure(settings.service_name, settings.log_level)
    middlewares = [request_context, problems, authentication]
    if settings.apm_server_url:
        # Inside request_context (which opens the span), outside problems (which sets the status).
        middlewares.insert(1, apm_transactions)
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    kit_settings: KitSettings = settings
    app[SETTINGS] = kit_settings
    if settings_key is not None:
        app[settings_key] = settings
    app[METRICS] = Metrics.create(settings.service_name)
    # Writes run what follows their commit through it: a committed write never answers 5xx.
    app[AFTER_COMMIT] = AfterCommit(app[METRICS], settings.service_name)
    app[READINESS] = []
    # First in, last out: the agent outlives every consumer and flushes what they recorded.
    app.cleanup_ctx.append(apm.apm_ctx)
    app.cleanup_ctx.append(http_ctx)
    if database:
        app.cleanup_ctx.append(mongo.mongo_ctx)
        app[READINESS].append(("database", mongo.ping))
    app[REVOCATIONS] = revocations.Revocations()
    if events:
        app.cleanup_ctx.append(broker.nats_ctx)
        app[READINESS].append(("broker", broker.ping))
        # Revoked accounts and sessions are refused within moments, not at their tokens' expiry.
        app.cleanup_ctx.append(revocations.follow)
        app[READINESS].append(("revocations", revocations.ready))

    async def verifier_ctx(app: web.Application) -> AsyncIterator[None]:
        if not events:
            # Said out loud, never silent: auth that quietly weakens is worse than none.
            log.warning(
                "no broker: revoked accounts and sessions are accepted until their tokens expire"
            )
        source = keys(app) if keys else JwksKeys(app[HTTP], settings.jwks_url)
        app[VERIFIER] = TokenVerifier(
            source,
            settings.jwt_issuer,
            settings.jwt_audience,
            # Without a broker (some tests) nothing feeds it, and no token is refused as revoked.
            revocations=app[REVOCATIONS] if events else None,
        )
        yield

    app.cleanup_ctx.append(verifier_ctx)
    if database and (outbox or idempotency_keys):
        app.cleanup_ctx.append(
            _stores_ctx(event_store=outbox, idempotency_records=idempotency_keys)
        )
    if idempotency_keys:
        app.cleanup_ctx.append(idempotency.sweeper)
    if outbox:
        _outermost(app, relay.relay_ctx(before_publish=before_publish))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    if api is not None:
        _serve_openapi(app, api)
    return app


def main(
    settings_class: type[S],
    create_app: Callable[[S], web.Application],
    argv: Sequence[str] | None = None,
) -> None:
    """A service's entry point: its settings from the environment (every problem reported at once,
    then exit 1), then serve `create_app(settings)`; with `--prepare`, start and stop it instead."""
    parser = argparse.ArgumentParser(description="Serve the service's API (settings: environment).")
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="create its indexes, streams and consumers, then exit (a deployment's one-off job)",
    )
    args = parser.parse_args(argv)
    try:
        settings = load(settings_class)
    except SettingsError as error:
        sys.exit(str(error))
    app = create_app(settings)
    if args.prepare:
        asyncio.run(prepare(app))
    else:
        run(app)


async def prepare(app: web.Application) -> None:
    """Start every context of `app` without listening, then stop them: what a service makes as it
    starts (indexes, streams, durable consumers) is made, once, before any instance serves."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await runner.cleanup()
    logging.getLogger("shopkit.app").info("prepared %s", app[SETTINGS].service_name)


def run(app: web.Application) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting, drain in-flight requests and close clients."""
    settings = app[SETTINGS]
    loop: asyncio.AbstractEventLoop | None = None
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = None

    async def freeze_startup_objects(app: web.Application) -> None:
        # Everything built at start-up lives as long as the process: keep it out of the garbage
        # collector's scans, which otherwise show up as latency spikes under load.
        gc.collect()
        gc.freeze()

    app.on_startup.append(freeze_startup_objects)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_timeout,
        access_log=None,
        print=None,
        loop=loop,
    )
