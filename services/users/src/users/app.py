"""The users service, wired: kit defaults, stores, signing keys, background jobs, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from shopkit import idempotency, relay
from shopkit.app import build_app
from shopkit.auth import StaticKeys
from shopkit.cache import Cache
from shopkit.events import EventStore
from shopkit.keys import DB, NATS
from shopkit.tasks import background
from users import accounts
from users.deps import Users
from users.keys import OPENAPI, USERS
from users.model import User
from users.openapi import document
from users.outbox import Outbox
from users.passwords import Hasher
from users.routes import routes
from users.sessions import Families
from users.settings import UsersSettings
from users.signing import SigningKeys
from users.store import UserStore
from users.sweeper import INTERVAL as SWEEP_INTERVAL
from users.sweeper import sweep
from users.throttle import LoginThrottle


def create_app(settings: UsersSettings) -> web.Application:
    signing = SigningKeys(settings.signing_keys.value)
    # The users service verifies its own tokens with the keys it holds: no HTTP call to itself.
    app = build_app(settings, keys=lambda _: StaticKeys(lambda: signing.public_keys))

    async def domain_ctx(app: web.Application) -> AsyncIterator[None]:
        db = app[DB]
        cache: Cache[User] = Cache("users", ttl=30.0)
        await cache.attach(app[NATS], settings.service_name)
        store = UserStore(db, cache)
        events = EventStore(db)
        token_events = EventStore(db, collection="token_events")
        await store.ensure_indexes()
        await events.ensure_indexes()
        await token_events.ensure_indexes()
        await idempotency.ensure_indexes(db)
        families = Families(token_events, store, settings.refresh_token_ttl)
        await families.ensure_indexes()
        app[USERS] = Users(
            settings=settings,
            store=store,
            hasher=Hasher(settings.password_pepper.value, settings.password_hash_cost),
            keys=signing,
            families=families,
            throttle=LoginThrottle(
                store,
                settings.login_failures_per_account,
                settings.login_failures_per_client,
                settings.login_window,
            ),
            outbox=Outbox(events, store),
        )
        await accounts.ensure_admin(app[USERS])
        yield
        await cache.detach()

    async def flush_outbox(app: web.Application) -> float | None:
        await app[USERS].outbox.flush_stale()
        return None

    app.cleanup_ctx.append(domain_ctx)
    app.cleanup_ctx.append(background("users-outbox", flush_outbox, interval=5.0))
    app.cleanup_ctx.append(
        background("users-sweeper", lambda app: sweep(app[USERS]), interval=SWEEP_INTERVAL)
    )
    app.cleanup_ctx.append(relay.relay_ctx())
    app.cleanup_ctx.append(idempotency.sweeper)
    app.router.add_routes(routes)
    app[OPENAPI] = document(app)
    return app
