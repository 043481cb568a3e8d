"""SMS through Twilio's own client, pointed at TWILIO_API_URL, and what each Twilio error means."""

from __future__ import annotations

import asyncio
import re

from aiohttp import ClientError
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from notifications.errors import PermanentFailure, TransientFailure, Undeliverable
from notifications.model import mask
from notifications.settings import NotificationsSettings

E164 = re.compile(r"^\+[1-9][0-9]{6,14}\Z")
# Twilio's codes for a number that can never get a message from us: invalid, not a mobile,
# unsubscribed (the recipient texted STOP), unreachable by SMS. Codes about our account (21408,
# a region not enabled) do not suppress the customer's number.
PERMANENT_CODES = frozenset({21211, 21214, 21610, 21612, 21614})


class SmsSender:
    def __init__(self, settings: NotificationsSettings) -> None:
        self._settings = settings
        # Created on the app's loop: the async client opens its aiohttp session at once.
        self._http = AsyncTwilioHttpClient(timeout=settings.twilio_timeout)
        self._client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token.value or "unset",
            http_client=self._http,
        )
        # The client's documented domain base: Twilio itself, or a peer that speaks its API.
        self._client.api.base_url = settings.twilio_api_url.rstrip("/")

    async def send(self, to: str, body: str) -> str:
        """Twilio's message sid."""
        try:
            async with asyncio.timeout(self._settings.twilio_timeout + 1):
                message = await self._client.messages.create_async(
                    to=to, from_=self._settings.twilio_from, body=body
                )
        except TwilioRestException as error:
            code = f"twilio-{error.code or error.status}"
            # Twilio's message names the number: only its status and code are kept.
            detail = f"{error.status} for {mask(to)}"
            if error.code in PERMANENT_CODES:
                raise PermanentFailure(code, detail) from None
            # Busy, down, or our own credentials refused: worth trying again (once fixed).
            if error.status in (401, 403, 429) or error.status >= 500:
                raise TransientFailure(code, detail) from None
            raise Undeliverable(code, detail) from None
        except (TwilioException, ClientError, OSError, TimeoutError) as error:
            raise TransientFailure("twilio-unreachable", f"{type(error).__name__}") from None
        return str(message.sid)

    async def close(self) -> None:
        if self._http.session is not None:
            await self._http.session.close()
