"""Fixtures for notifications: the real app against Mailpit, the Twilio peer, NATS and FerretDB."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from notifications_support import Mailbox, Notifications

from notifications.app import create_app
from notifications.settings import NotificationsSettings
from shopkit.service_tokens import StaticToken
from shopkit.settings import load
from shopkit.testing.plugin import MailServer
from shopkit.testing.tokens import TokenFactory

PUBLISHERS = ("users", "orders", "payments", "products")


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture
def mailbox(mail_server: MailServer) -> Mailbox:
    return Mailbox(mail_server)


@pytest.fixture
def notifications_env(
    service_env: dict[str, str], mail_server: MailServer, twilio_url: str, database_name: str
) -> dict[str, str]:
    return {
        **service_env,
        "ENVIRONMENT": "local",
        "SERVICE_NAME": "notifications" + database_name,
        **{f"{name.upper()}_SERVICE": name + database_name for name in PUBLISHERS},
        "SMTP_HOST": mail_server.smtp_host,
        "SMTP_PORT": str(mail_server.smtp_port),
        "TWILIO_API_URL": twilio_url,
        "TWILIO_AUTH_TOKEN": "test-token",
        "STAFF_EMAILS": "staff@shop.example",
        "RETRY_DELAY": "0.2",
        "MAX_RETRY_DELAY": "0.5",
        "SEND_ATTEMPTS": "4",
        "USERS_URL": "http://127.0.0.1:9",
    }


@pytest.fixture
def start_notifications(
    serve: Callable[[Any], Awaitable[Any]], notifications_env: dict[str, str], tokens: TokenFactory
) -> Callable[..., Awaitable[Notifications]]:
    """Start an instance (several share the database and broker, as in production)."""

    async def start(**overrides: str) -> Notifications:
        env = {**notifications_env, **overrides}
        settings = load(NotificationsSettings, env)
        service_token = tokens.mint("service:notifications", "service")
        app = create_app(
            settings, keys=tokens.keys(), service_tokens=lambda _app: StaticToken(service_token)
        )
        client = await serve(app)
        streams = {name: env[f"{name.upper()}_SERVICE"] for name in PUBLISHERS}
        return Notifications(client, tokens, streams)

    return start


@pytest.fixture
async def notifications(
    start_notifications: Callable[..., Awaitable[Notifications]],
) -> Notifications:
    return await start_notifications()
