"""Stripe's API through the SDK's async client: bounded in time, its failures named as problems.

Every call that changes something at Stripe carries an idempotency key derived from its cause
(`order:<id>:create`, `order:<id>:cancel`, `refund:<order>:<refund id>`), so a retry after a lost
answer lands on what the first attempt did. Answers come back as plain dicts. The API key is held
by the SDK's client only; nothing here logs it, nor any client secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import stripe
from stripe.params import EventListParams, PaymentIntentCreateParams, RefundCreateParams

from payments.errors import AmountTooSmall, PaymentRejected, StripeFailed, StripeUnavailable
from payments.settings import PaymentsSettings
from shopkit.problems import Problem

log = logging.getLogger("payments.stripe")
T = TypeVar("T")
# Stripe's error codes for an amount it will not charge.
AMOUNT_TOO_SMALL = "amount_too_small"
UNEXPECTED_STATE = "payment_intent_unexpected_state"
LOOKBACK_PAGES = 10


class UnexpectedState(Exception):
    """Stripe refused a change because the PaymentIntent is past it (succeeded, processing)."""


class StripeGateway:
    def __init__(self, settings: PaymentsSettings) -> None:
        # One aiohttp session for every call, closed with the app (`close`); each request is
        # bounded by STRIPE_TIMEOUT, each call by `budget` (retries and their waits included).
        self._http = stripe.AIOHTTPClient(
            timeout=aiohttp.ClientTimeout(
                total=settings.stripe_timeout, connect=min(settings.stripe_timeout, 5.0)
            )
        )
        self._client = stripe.StripeClient(
            settings.stripe_api_key.value,
            base_addresses={"api": settings.stripe_api_url},
            http_client=self._http,
            max_network_retries=settings.stripe_max_retries,
        )
        self.budget = settings.stripe_budget + 1.0

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def create_intent(
        self, order_id: str, amount: int, currency: str, email: str | None, key: str
    ) -> dict[str, Any]:
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency.lower(),
            "automatic_payment_methods": {"enabled": True},
            "metadata": {"order_id": order_id},
        }
        if email:
            params["receipt_email"] = email
        return await self._call(
            lambda: self._client.v1.payment_intents.create_async(params, {"idempotency_key": key})
        )

    async def retrieve_intent(self, payment_intent_id: str) -> dict[str, Any]:
        return await self._call(
            lambda: self._client.v1.payment_intents.retrieve_async(payment_intent_id)
        )

    async def cancel_intent(self, payment_intent_id: str, key: str) -> dict[str, Any]:
        """Cancel it; UnexpectedState when it is past cancelling (succeeded, processing)."""
        return await self._call(
            lambda: self._client.v1.payment_intents.cancel_async(
                payment_intent_id,
                {"cancellation_reason": "abandoned"},
                {"idempotency_key": key},
            )
        )

    async def create_refund(
        self, payment_intent_id: str, amount: int, metadata: dict[str, str], key: str
    ) -> dict[str, Any]:
        params: RefundCreateParams = {
            "payment_intent": payment_intent_id,
            "amount": amount,
            "metadata": metadata,
        }
        return await self._call(
            lambda: self._client.v1.refunds.create_async(params, {"idempotency_key": key})
        )

    async def retrieve_refund(self, stripe_refund_id: str) -> dict[str, Any]:
        return await self._call(lambda: self._client.v1.refunds.retrieve_async(stripe_refund_id))

    async def events_since(self, created: int) -> list[dict[str, Any]]:
        """Stripe's events created at or after `created` (Unix seconds), a few pages at most."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(LOOKBACK_PAGES):
            params: EventListParams = {"created": {"gte": created}, "limit": 100}
            if after is not None:
                params["starting_after"] = after
            page = await self._call(
                lambda params=params: self._client.v1.events.list_async(params)  # type: ignore[misc]
            )
            found += page["data"]
            if not page.get("has_more") or not page["data"]:
                break
            after = page["data"][-1]["id"]
        return found

    async def _call(self, call: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.budget):
                answer = await call()
        except TimeoutError:
            raise StripeUnavailable("Stripe did not answer in time; retry shortly") from None
        except stripe.StripeError as error:
            raise _problem(error) from None
        found: dict[str, Any] = answer.to_dict()
        return found


def _problem(error: stripe.StripeError) -> Exception:
    """What a Stripe failure means for the caller. Stripe's messages name no secret; they are
    passed on for a refused request, and logged with Stripe's request id."""
    status = error.http_status or 0
    code = error.code or ""
    if isinstance(error, stripe.APIConnectionError | stripe.APIError | stripe.RateLimitError):
        log.warning("Stripe unavailable: %s (request %s)", type(error).__name__, error.request_id)
        return StripeUnavailable("Stripe cannot be reached right now; retry shortly")
    if isinstance(error, stripe.IdempotencyError) or status == 409 or status >= 500:
        log.warning("Stripe asked to retry: %s (request %s)", code, error.request_id)
        return StripeUnavailable("Stripe is busy with this request; retry shortly")
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        log.error("Stripe refused the platform's API key (request %s)", error.request_id)
        return StripeFailed("Stripe refused the platform's credentials")
    if code == AMOUNT_TOO_SMALL:
        return AmountTooSmall(error.user_message or "the amount is too small for Stripe")
    if code == UNEXPECTED_STATE:
        return UnexpectedState(error.user_message or code)
    log.warning("Stripe refused a request: %s (request %s)", code, error.request_id)
    refused: Problem = PaymentRejected(
        error.user_message or "Stripe refused the request", stripe_code=code or None
    )
    return refused
