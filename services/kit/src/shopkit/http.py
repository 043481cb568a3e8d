"""The client for calls between services: a deadline, safe retries, a breaker per upstream."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from shopkit import context
from shopkit.headers import AUTHORIZATION, IDEMPOTENCY_KEY, REQUEST_ID, TRACEPARENT
from shopkit.metrics import Metrics
from shopkit.problems import BadGateway, GatewayTimeout, Problem, ServiceUnavailable

__all__ = ["BreakerState", "CircuitBreaker", "ServiceClient", "UpstreamResponse"]

log = logging.getLogger("shopkit.upstream")
Clock = Callable[[], float]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUSES = frozenset({502, 503, 504})


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after `threshold` consecutive failures and fails fast for `cool_down` seconds; then
    one trial goes through: success closes the breaker, failure opens it for another cool-down."""

    def __init__(
        self, threshold: int = 5, cool_down: float = 10.0, *, clock: Clock = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.cool_down = cool_down
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_started_at: float | None = None

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at < self.cool_down:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open state only the one trial may."""
        state = self.state
        if state is not BreakerState.HALF_OPEN:
            return state is BreakerState.CLOSED
        now = self._clock()
        # A trial whose caller was cancelled never reports back; it must not wedge the breaker.
        if self._trial_started_at is not None and now - self._trial_started_at < self.cool_down:
            return False
        self._trial_started_at = now
        return True

    def succeeded(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_started_at = None

    def failed(self) -> None:
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.threshold:
            self._opened_at = self._clock()
            self._trial_started_at = None


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """An upstream answer below 500: status, decoded JSON body (None when empty) and headers."""

    status: int
    body: Any
    headers: CIMultiDictProxy[str]

    @property
    def problem(self) -> str | None:
        """The slug of a problem answer's `type` (`.../problems/cart-held` -> `cart-held`)."""
        body = self.body if isinstance(self.body, dict) else {}
        kind = body.get("type")
        return kind.rsplit("/", 1)[-1] if isinstance(kind, str) and kind else None

    @property
    def fields(self) -> dict[str, Any]:
        """The JSON object answered; empty when the body is none or not an object."""
        return self.body if isinstance(self.body, dict) else {}


class ServiceClient:
    """Calls one upstream service. Answers below 500 are returned (a 4xx is the caller's to judge);
    a failure leaves as a problem: timeout 504, unreachable or breaker open 503, upstream 5xx 502.

    `timeout` bounds the whole call, retries and backoff included; `attempt_timeout` (default: all
    that is left) bounds one attempt, so a hung attempt can be retried within the same budget.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        name: str,
        base_url: str,
        *,
        timeout: float = 5.0,
        attempt_timeout: float | None = None,
        retries: int = 2,
        backoff: float = 0.05,
        breaker: CircuitBreaker | None = None,
        metrics: Metrics | None = None,
        caller: str = "",
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self.retries = retries
        self.backoff = backoff
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self._session = session
        self._metrics = metrics
        self._caller = caller

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        token: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        repeatable: bool = False,
    ) -> UpstreamResponse:
        """`headers` adds to what every call sends (a caller's credentials forwarded, say; `token`
        replaces their Authorization);
        `repeatable` says a POST is safe to send again (the upstream keys it by what it names)."""
        method = method.upper()
        # A key makes a POST safe to repeat: the upstream replays instead of acting twice.
        repeatable = repeatable or method in SAFE_METHODS or idempotency_key is not None
        headers = {**(headers or {}), **self._headers(token, idempotency_key)}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        attempt = 0
        while True:
            if not self.breaker.allow():
                self._count("rejected")
                raise ServiceUnavailable(f"the {self.name} service is unavailable")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise GatewayTimeout(f"the {self.name} service did not answer in time")
            budget = min(remaining, self.attempt_timeout or remaining)
            failure: Problem
            try:
                response = await self._attempt(method, path, headers, json, params, budget)
            except TimeoutError:
                outcome, retry = "timeout", repeatable
                failure = GatewayTimeout(f"the {self.name} service did not answer in time")
            except aiohttp.ClientConnectorError:
                # Never connected means never sent: repeating is safe for any method.
                outcome, retry = "unreachable", True
                failure = ServiceUnavailable(f"the {self.name} service is unreachable")
            except aiohttp.ClientConnectionError:
                # Dropped mid-request: the upstream may have acted; repeat only what is repeatable.
                outcome, retry = "disconnected", repeatable
                failure = BadGateway(f"the {self.name} service dropped the connection")
            except (aiohttp.ClientError, ValueError):
                outcome, retry = "error", False
                failure = BadGateway(f"the {self.name} service sent no usable answer")
            else:
                if response.status < 500:
                    self.breaker.succeeded()
                    self._count("ok" if response.status < 400 else "client_error")
                    return response
                outcome = "server_error"
                retry = repeatable and response.status in RETRYABLE_STATUSES
                failure = BadGateway(f"the {self.name} service failed ({response.status})")
            self.breaker.failed()
            self._count(outcome)
            log.warning(
                "%s %s%s failed on attempt %d: %s",
                method,
                self.name,
                path,
                attempt + 1,
                outcome,
                extra={"upstream": self.name, "event.outcome": outcome},
            )
            pause = self.backoff * 2**attempt * random.uniform(0.5, 1.0)
            if not retry or attempt >= self.retries or loop.time() + pause >= deadline:
                raise failure
            attempt += 1
            await asyncio.sleep(pause)

    async def _attempt(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: Any,
        params: Mapping[str, str] | None,
        budget: float,
    ) -> UpstreamResponse:
        async with self._session.request(
            method,
            self.base_url + path,
            json=body,
            params=params,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=budget),
            # Redirects would carry the caller's token to wherever the upstream points.
            allow_redirects=False,
        ) as response:
            raw = await response.read()
            status = response.status
            # 5xx bodies are never read by callers (they become a 502), so they need not be JSON.
            decoded = json.loads(raw) if raw and status < 500 else None
            return UpstreamResponse(status, decoded, response.headers)

    def _headers(self, token: str | None, idempotency_key: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        request_id = context.request_id.get()
        if request_id:
            headers[REQUEST_ID] = request_id
        # The upstream's span becomes a child of the one making the call: one trace across both.
        traceparent = context.traceparent()
        if traceparent:
            headers[TRACEPARENT] = traceparent
        if token:
            headers[AUTHORIZATION] = f"Bearer {token}"
        if idempotency_key is not None:
            headers[IDEMPOTENCY_KEY] = idempotency_key
        return headers

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.upstream_calls.labels(self._caller, self.name, outcome).inc()
