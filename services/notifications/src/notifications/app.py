"""The notifications service, wired: kit defaults, its store, templates and channels, the event
consumers that record deliveries, the dispatcher that sends them, the campaign planner, routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from notifications import campaigns, promotions, routes, triggers
from notifications.deliveries import Deliveries
from notifications.dispatch import Dispatcher
from notifications.keys import DELIVERIES, DISPATCHER, SETTINGS
from notifications.mail import Mailer
from notifications.metrics import NotificationMetrics
from notifications.openapi import OPERATIONS
from notifications.rendering import Renderer, valid_locale
from notifications.settings import NotificationsSettings
from notifications.sms import SmsSender
from notifications.store import NotificationStore
from shopkit.app import Api, build_app
from shopkit.auth import KeySource
from shopkit.http import ServiceClient
from shopkit.keys import DB, HTTP, METRICS
from shopkit.service_tokens import ClientCredentials, ServiceTokens
from shopkit.tasks import background

TokenSource = Callable[[web.Application], ServiceTokens]
PLAN_INTERVAL = 1.0
# Longer than one dispatch pass may take to hand over its batch (dispatch.ATTEMPT_TIMEOUT).
DRAIN_TIMEOUT = 30.0


def create_app(
    settings: NotificationsSettings,
    *,
    keys: Callable[[web.Application], KeySource] | None = None,
    service_tokens: TokenSource | None = None,
) -> web.Application:
    """`keys` overrides where access tokens are verified from (the JWKS URL by default);
    `service_tokens` where this service's own token comes from (users, by default)."""
    valid_locale(settings.default_locale)
    app = build_app(
        settings,
        settings_key=SETTINGS,
        keys=keys,
        api=Api("notifications", operations=OPERATIONS),
        idempotency_keys=True,
    )

    async def notifications_ctx(app: web.Application) -> AsyncIterator[None]:
        store = NotificationStore(app[DB])
        await store.ensure_indexes()
        users = ServiceClient(
            app[HTTP],
            "users",
            settings.users_url,
            timeout=settings.upstream_timeout,
            metrics=app[METRICS],
            caller=settings.service_name,
        )
        tokens = (
            service_tokens(app)
            if service_tokens is not None
            else ClientCredentials(
                users,
                settings.service_client_id or settings.service_name,
                settings.service_client_secret.value,
            )
        )
        mailer, sms = Mailer(settings), SmsSender(settings)
        app[DELIVERIES] = deliveries = Deliveries(
            settings=settings,
            store=store,
            renderer=Renderer(settings.default_locale),
            mailer=mailer,
            sms=sms,
            users=users,
            tokens=tokens,
            metrics=NotificationMetrics.create(app[METRICS].registry),
        )
        app[DISPATCHER] = Dispatcher(deliveries)
        try:
            yield
        finally:
            await mailer.close()
            await sms.close()

    async def dispatching(app: web.Application) -> AsyncIterator[None]:
        # Stopped, not cancelled: a message handed over at shutdown is recorded as sent, rather
        # than left `sending` to be sent again (a duplicate) by whichever instance goes on.
        dispatcher = app[DISPATCHER]
        task = asyncio.create_task(dispatcher.run(), name="notifications.dispatch")
        yield
        dispatcher.stop()
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def plan_pass(app: web.Application) -> float | None:
        return await campaigns.plan_pass(app[DELIVERIES])

    app.cleanup_ctx.append(notifications_ctx)
    app.cleanup_ctx.append(dispatching)
    app.cleanup_ctx.append(background("notifications.campaigns", plan_pass, PLAN_INTERVAL))
    for consumer in triggers.consumers(
        settings.service_name,
        users=settings.users_service,
        orders=settings.orders_service,
        payments=settings.payments_service,
        products=settings.products_service,
    ):
        app.cleanup_ctx.append(consumer)
    app.router.add_routes(routes.routes)
    app.router.add_routes(promotions.routes)
    return app
