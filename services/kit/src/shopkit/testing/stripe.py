"""A recording, fault-injecting proxy in front of stripe-mock, and webhooks signed as Stripe signs them."""

# Run on its own (`python -m shopkit.testing.stripe --upstream URL --port N`, as the local stack
# does), the proxy answers what it recorded at `GET /_proxy/requests?from=N` and takes faults at
# `POST /_proxy/faults` (`DELETE` clears them): what load runs read and switch from outside.

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import itertools
import signal
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

__all__ = [
    "Fault",
    "Recorded",
    "StripeProxy",
    "order_intent_event",
    "sign_webhook",
    "webhook_event",
]

# Per connection, not end to end (RFC 9110 7.6.1): the proxy's own client and server set them.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=30)


class Fault(StrEnum):
    """What the proxy does to a request that matches an injected rule."""

    # Answers Stripe's 500 without forwarding: Stripe never saw the request.
    ERROR = "error"
    # Holds the request without forwarding, past any sane client timeout, then drops the connection.
    HANG = "hang"
    # Forwards, then answers 500: Stripe acted (a charge happened) but its answer was lost.
    LOSE_ANSWER = "lose answer"


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request that reached the proxy, and whether stripe-mock saw it."""

    method: str
    path: str
    idempotency_key: str | None
    form: dict[str, str]
    forwarded: bool
    fault: Fault | None


@dataclass(slots=True)
class _Rule:
    fault: Fault
    remaining: int
    method: str | None
    path: str
    hold: float
    # time.monotonic() past which the rule no longer matches (None: only `remaining` counts).
    until: float | None = None

    def matches(self, request: web.Request) -> bool:
        method_ok = self.method is None or self.method.upper() == request.method
        in_time = self.until is None or time.monotonic() < self.until
        return self.remaining > 0 and in_time and method_ok and fnmatchcase(request.path, self.path)


class StripeProxy:
    """Forwards every request untouched to stripe-mock (`upstream`) and answers its answer,
    recording each one; `inject` makes the next matching requests fail instead.

    stripe-mock keeps no state and ignores idempotency keys, so what a service sent is read here.
    Use it as `async with StripeProxy(upstream) as proxy:` and point the SDK at `proxy.url`.
    It keeps the last `keep` requests (a long-running local stack must not grow without end);
    `total` counts every one.
    """

    def __init__(self, upstream: str, *, port: int | None = None, keep: int = 200_000) -> None:
        self.upstream = upstream.rstrip("/")
        self.records: deque[Recorded] = deque(maxlen=keep)
        self.total = 0
        self._port = port
        self._rules: list[_Rule] = []
        self._closing = asyncio.Event()
        self._server: TestServer | None = None
        self._client: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return str(self._server.make_url("")).rstrip("/")

    def inject(
        self,
        fault: Fault,
        *,
        times: int = 1,
        method: str | None = None,
        path: str = "*",
        hold: float = 3.0,
        seconds: float | None = None,
    ) -> None:
        """Make the next `times` requests matching `method` (any if None) and the glob `path`
        (`/v1/payment_intents/*/confirm`) fail with `fault`; HANG holds each for `hold` seconds.
        With `seconds`, every matching request fails for that long instead, however many come."""
        if seconds is None:
            self._rules.append(_Rule(fault, times, method, path, hold))
        else:
            until = time.monotonic() + seconds
            self._rules.append(_Rule(fault, 2**62, method, path, hold, until))

    def clear(self) -> None:
        """Drop every fault still waiting to match."""
        self._rules.clear()

    def requests(self, method: str | None = None, path: str = "*") -> list[Recorded]:
        """The recorded requests matching `method` and the glob `path`, in arrival order."""
        return [
            record
            for record in self.records
            if (method is None or record.method == method.upper())
            and fnmatchcase(record.path, path)
        ]

    def reached_stripe(self, method: str | None = None, path: str = "*") -> list[Recorded]:
        """The matching requests that stripe-mock received (what Stripe would have acted on)."""
        return [record for record in self.requests(method, path) if record.forwarded]

    async def __aenter__(self) -> StripeProxy:
        app = web.Application()
        app.cleanup_ctx.append(self._session)
        # Before the server waits for its handlers: a held request lets go at once.
        app.on_shutdown.append(self._release_held)
        app.router.add_get("/_proxy/requests", self._recorded)
        app.router.add_post("/_proxy/faults", self._inject)
        app.router.add_delete("/_proxy/faults", self._clear)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1", port=self._port)
        await self._server.start_server()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            await self._server.close()

    async def _session(self, app: web.Application) -> AsyncIterator[None]:
        # No decompression: the body goes back byte for byte with its Content-Encoding.
        async with aiohttp.ClientSession(
            timeout=_UPSTREAM_TIMEOUT, auto_decompress=False
        ) as session:
            self._client = session
            yield

    async def _release_held(self, app: web.Application) -> None:
        self._closing.set()

    async def _recorded(self, request: web.Request) -> web.Response:
        """`{"total": n, "requests": [...]}`: those from the `from`-th (0-based, of all ever
        recorded) on, as far as they are still kept."""
        start = int(request.query.get("from", "0"))
        first_kept = self.total - len(self.records)
        kept = itertools.islice(self.records, max(0, start - first_kept), None)
        return web.json_response(
            {"total": self.total, "requests": [asdict(record) for record in kept]},
            dumps=lambda value: orjson.dumps(value).decode(),
        )

    async def _inject(self, request: web.Request) -> web.Response:
        """`inject` from outside: `{"fault": "error", "seconds": 30, "path": "/v1/*"}`."""
        body = await request.json()
        try:
            self.inject(
                Fault(body["fault"]),
                times=int(body.get("times", 1)),
                method=body.get("method"),
                path=str(body.get("path", "*")),
                hold=float(body.get("hold", 3.0)),
                seconds=None if body.get("seconds") is None else float(body["seconds"]),
            )
        except (KeyError, ValueError, TypeError) as error:
            raise web.HTTPBadRequest(text=f"not a fault: {error}") from error
        return web.Response(status=204)

    async def _clear(self, request: web.Request) -> web.Response:
        self.clear()
        return web.Response(status=204)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rule = next((rule for rule in self._rules if rule.matches(request)), None)
        fault = None
        if rule is not None:
            rule.remaining -= 1
            fault = rule.fault
        self.total += 1
        self.records.append(
            Recorded(
                method=request.method,
                path=request.path,
                idempotency_key=request.headers.get("Idempotency-Key"),
                form=_form(request, body),
                forwarded=fault in (None, Fault.LOSE_ANSWER),
                fault=fault,
            )
        )
        if fault is Fault.ERROR:
            return _stripe_error()
        if fault is Fault.HANG:
            assert rule is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), rule.hold)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never sent: the connection is gone
        answer = await self._forward(request, body)
        return _stripe_error() if fault is Fault.LOSE_ANSWER else answer

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        assert self._client is not None  # set by the app's cleanup context before serving
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._client.request(
            request.method,
            self.upstream + request.rel_url.raw_path_qs,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as upstream:
            answer_body = await upstream.read()
            answer_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP
            }
            return web.Response(status=upstream.status, body=answer_body, headers=answer_headers)


def _form(request: web.Request, body: bytes) -> dict[str, str]:
    # The SDK sends parameters form-encoded (metadata[order_id]=...): in the body for POST,
    # in the query string for GET and DELETE.
    if request.content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode(), keep_blank_values=True))
    return dict(request.query)


def _stripe_error() -> web.Response:
    """A 500 as Stripe shapes it: the SDK raises its APIError from it."""
    request_id = "req_fault_" + uuid.uuid4().hex[:14]
    error = {
        "error": {
            "type": "api_error",
            "message": "An unknown error occurred (injected by the test proxy).",
            "request_log_url": f"https://dashboard.stripe.com/test/logs/{request_id}",
        }
    }
    return web.Response(
        status=500,
        body=orjson.dumps(error),
        content_type="application/json",
        headers={"Request-Id": request_id},
    )


def sign_webhook(payload: bytes | str, secret: str, *, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe sends with `payload`: `t=<ts>,v1=<hex HMAC-SHA256 of
    "<ts>.<payload>" keyed with the endpoint's webhook secret>`; `timestamp` defaults to now."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    raw = payload.encode() if isinstance(payload, str) else payload
    mac = hmac.new(secret.encode(), f"{signed_at}.".encode() + raw, hashlib.sha256)
    return f"t={signed_at},v1={mac.hexdigest()}"


def webhook_event(
    event_type: str,
    data_object: dict[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
) -> bytes:
    """A Stripe event as its webhook body carries it (stripe-mock never sends webhooks)."""
    event = {
        "id": event_id or "evt_" + uuid.uuid4().hex[:24],
        "object": "event",
        "created": int(time.time()) if created is None else created,
        "data": {"object": data_object},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    return orjson.dumps(event)


INTENT_STATUS = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.processing": "processing",
    "payment_intent.payment_failed": "requires_payment_method",
    "payment_intent.canceled": "canceled",
}


def order_intent_event(
    event_type: str,
    order: dict[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
    **fields: Any,
) -> bytes:
    """Stripe's `payment_intent.*` event about an order's PaymentIntent, from the order as the
    orders API answers it (its id, total, currency and `payment.payment_intent_id`)."""
    intent = {
        "id": order["payment"]["payment_intent_id"],
        "object": "payment_intent",
        "amount": order["total"]["amount"],
        "amount_received": order["total"]["amount"],
        "currency": order["currency"].lower(),
        "status": INTENT_STATUS.get(event_type, "succeeded"),
        "metadata": {"order_id": order["id"]},
        **fields,
    }
    return webhook_event(event_type, intent, event_id=event_id, created=created)


async def _serve(upstream: str, port: int) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    async with StripeProxy(upstream, port=port):
        await stopping.wait()


def main(argv: Sequence[str] | None = None) -> None:
    """The proxy as a process of its own, until SIGTERM."""
    parser = argparse.ArgumentParser(description="A recording proxy in front of stripe-mock")
    parser.add_argument("--upstream", required=True, help="stripe-mock's URL")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.upstream, args.port))


if __name__ == "__main__":
    main()
