"""What sending needs, held together: the store, the templates, the channels, users' links."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from notifications.errors import TransientFailure, Undeliverable
from notifications.mail import Mailer
from notifications.metrics import NotificationMetrics
from notifications.model import Campaign, Delivery
from notifications.rendering import Renderer
from notifications.settings import NotificationsSettings
from notifications.sms import SmsSender
from notifications.store import NotificationStore
from shopkit.http import ServiceClient
from shopkit.problems import Problem
from shopkit.service_tokens import ServiceTokens

# Where each kind of link lands in the storefront, by the purpose users answers.
LINK_PAGES = {"email-verification": "verify-email", "password-reset": "reset-password"}


@dataclass(slots=True)
class Deliveries:
    settings: NotificationsSettings
    store: NotificationStore
    renderer: Renderer
    mailer: Mailer
    sms: SmsSender
    users: ServiceClient
    tokens: ServiceTokens
    metrics: NotificationMetrics
    # Set when deliveries were recorded: the dispatcher looks at once instead of at its next pass.
    recorded: asyncio.Event = field(default_factory=asyncio.Event)
    # Campaigns being sent, by id (see campaigns.sent_campaign).
    campaigns: dict[str, Campaign] = field(default_factory=dict)

    async def record(self, deliveries: Sequence[Delivery]) -> set[str]:
        inserted = await self.store.record(deliveries)
        if inserted:
            self.recorded.set()
        return inserted

    async def link(self, user_id: str, link_id: str) -> str:
        """The storefront link carrying the token users keeps for `link_id` (never on the bus)."""
        try:
            answer = await self.users.request(
                "GET",
                f"/internal/users/{user_id}/links/{link_id}",
                token=await self.tokens.token(),
            )
        except Problem as problem:
            raise TransientFailure("users-unavailable", problem.detail) from None
        if answer.status == 401:
            self.tokens.forget()
            raise TransientFailure("users-refused", "the service token was refused")
        if answer.status in (404, 410):
            raise Undeliverable("link-expired", f"users answered {answer.status} for the link")
        if answer.status != 200 or not isinstance(answer.fields.get("token"), str):
            raise TransientFailure("users-refused", f"users answered {answer.status}")
        page = LINK_PAGES.get(str(answer.fields.get("purpose")), "link")
        base = self.settings.storefront_url.rstrip("/")
        return f"{base}/{page}?token={answer.fields['token']}"
