"""The users service, wired: kit defaults, stores, signing keys, background jobs, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from shopkit.app import Api, build_app
from shopkit.auth import StaticKeys
from shopkit.cache import Cache
from shopkit.keys import AFTER_COMMIT, DB, NATS
from shopkit.tasks import background
from users import accounts, internal, resets
from users.deps import open_collaborators
from users.keys import AFTER_ANSWER, USERS
from users.model import User
from users.openapi import OPERATIONS
from users.resets import AfterAnswer
from users.routes import routes
from users.settings import UsersSettings
from users.signing import SigningKeys
from users.sweeper import INTERVAL as SWEEP_INTERVAL
from users.sweeper import sweep


def create_app(settings: UsersSettings) -> web.Application:
    signing = SigningKeys(settings.signing_keys.value)
    # The users service verifies its own tokens with the keys it holds: no HTTP call to itself.
    app = build_app(
        settings,
        keys=lambda _: StaticKeys(lambda: signing.public_keys),
        api=Api("users", operations=OPERATIONS),
        idempotency_keys=True,
        outbox=True,
    )

    async def domain_ctx(app: web.Application) -> AsyncIterator[None]:
        db = app[DB]
        cache: Cache[User] = Cache("users", ttl=30.0)
        await cache.attach(app[NATS], settings.service_name)
        app[USERS] = await open_collaborators(db, settings, signing, cache, app[AFTER_COMMIT])
        await accounts.ensure_admin(app[USERS])
        yield
        await cache.detach()

    async def after_answer_ctx(app: web.Application) -> AsyncIterator[None]:
        app[AFTER_ANSWER] = AfterAnswer()
        yield
        await app[AFTER_ANSWER].drain()

    async def finish_registrations(app: web.Application) -> float | None:
        await app[USERS].history.finish_registrations()
        return None

    app.cleanup_ctx.append(domain_ctx)
    app.cleanup_ctx.append(background("users-registrations", finish_registrations, interval=5.0))
    app.cleanup_ctx.append(
        background("users-sweeper", lambda app: sweep(app[USERS]), interval=SWEEP_INTERVAL)
    )
    app.cleanup_ctx.append(after_answer_ctx)
    app.cleanup_ctx.append(
        background(
            "users-password-resets",
            lambda app: resets.retry_stale(app[USERS]),
            interval=resets.RETRY_INTERVAL,
        )
    )
    app.router.add_routes(routes)
    app.router.add_routes(internal.routes)
    return app
