"""The service client against real upstreams on loopback: headers, retries, timeouts, breaker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from shopkit import context
from shopkit.http import BreakerState, CircuitBreaker, ServiceClient
from shopkit.metrics import Metrics
from shopkit.problems import BadGateway, GatewayTimeout, ServiceUnavailable
from shopkit.testing.peers import free_port

Serve = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


class Upstream:
    """A real server on loopback that answers a scripted list of statuses and records every hit."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.hits: list[web.Request] = []
        self.hang_first = False
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(request)
        if self.hang_first and len(self.hits) == 1:
            await self.release.wait()
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return web.json_response({"hit": len(self.hits)}, status=status)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/thing", self.handle)
        return app


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def start(serve: Serve, upstream: Upstream) -> str:
    client = await serve(upstream.app())
    return str(client.make_url("/"))


async def test_the_request_id_and_the_token_are_propagated(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    # given an upstream and a request being handled under a request id
    upstream = Upstream(200)
    client = ServiceClient(session, "products", await start(serve, upstream))
    reset = context.request_id.set("req-123")
    try:
        # when the handler calls the upstream on behalf of a user
        response = await client.request("GET", "/thing", token="user-token")
    finally:
        context.request_id.reset(reset)
    # then the upstream sees both
    assert response.status == 200
    assert upstream.hits[0].headers["X-Request-ID"] == "req-123"
    assert upstream.hits[0].headers["Authorization"] == "Bearer user-token"


async def test_a_get_is_retried_after_a_503_and_succeeds(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    # given an upstream that is briefly unavailable
    upstream = Upstream(503, 200)
    client = ServiceClient(session, "products", await start(serve, upstream))
    # when a GET is made
    response = await client.request("GET", "/thing", params={"q": "x"})
    # then it was retried and the second answer is returned
    assert (response.status, response.body) == (200, {"hit": 2})
    assert len(upstream.hits) == 2
    assert upstream.hits[1].query["q"] == "x"


async def test_a_post_without_an_idempotency_key_is_not_retried(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    # given an upstream that answers 503 once
    upstream = Upstream(503, 201)
    client = ServiceClient(session, "payments", await start(serve, upstream))
    # when a POST without an idempotency key is made
    with pytest.raises(BadGateway):
        await client.request("POST", "/thing", json={"amount": 1})
    # then it reached the upstream exactly once
    assert len(upstream.hits) == 1


async def test_a_post_with_an_idempotency_key_is_retried_and_carries_the_key(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    # given an upstream that answers 503 once
    upstream = Upstream(503, 201)
    client = ServiceClient(session, "payments", await start(serve, upstream))
    # when a POST carrying an idempotency key is made
    response = await client.request("POST", "/thing", json={"a": 1}, idempotency_key="order:1")
    # then it was retried with the same key
    assert response.status == 201
    assert [hit.headers["Idempotency-Key"] for hit in upstream.hits] == ["order:1", "order:1"]


async def test_an_upstream_4xx_is_returned_to_the_caller_without_retry(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    # given an upstream that does not know the resource
    upstream = Upstream(404)
    client = ServiceClient(session, "products", await start(serve, upstream))
    # when it is asked
    response = await client.request("GET", "/thing")
    # then the caller gets the 404 to decide on, after one call
    assert (response.status, response.body) == (404, {"hit": 1})
    assert len(upstream.hits) == 1


async def test_an_upstream_500_becomes_a_502_without_retry(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    # given an upstream with a bug
    upstream = Upstream(500, 200)
    client = ServiceClient(session, "products", await start(serve, upstream))
    # when it is asked, then the caller gets a bad gateway and the upstream one call
    with pytest.raises(BadGateway):
        await client.request("GET", "/thing")
    assert len(upstream.hits) == 1


async def test_a_slow_upstream_gives_504_within_the_timeout(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    # given an upstream that never answers
    upstream = Upstream(200)
    upstream.hang_first = True
    client = ServiceClient(session, "products", await start(serve, upstream), timeout=0.3)
    started = time.monotonic()
    try:
        # when it is called, then the call gives up with a gateway timeout in time
        with pytest.raises(GatewayTimeout):
            await client.request("GET", "/thing")
        assert time.monotonic() - started < 0.3 + 0.2
    finally:
        upstream.release.set()


async def test_a_hung_attempt_is_retried_within_the_budget(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    # given an upstream whose first answer hangs
    upstream = Upstream(200)
    upstream.hang_first = True
    url = await start(serve, upstream)
    client = ServiceClient(session, "products", url, timeout=3.0, attempt_timeout=0.2)
    try:
        # when a GET is made
        response = await client.request("GET", "/thing")
    finally:
        upstream.release.set()
    # then the second attempt answered
    assert response.status == 200
    assert len(upstream.hits) == 2


async def test_a_dead_port_gives_503(session: aiohttp.ClientSession) -> None:
    # given nothing listening on a port
    client = ServiceClient(session, "carts", f"http://127.0.0.1:{free_port()}")
    # when it is called, then the upstream is reported unavailable
    with pytest.raises(ServiceUnavailable):
        await client.request("GET", "/thing")


async def test_the_breaker_opens_after_failures_then_half_opens_after_the_cool_down(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    # given an upstream failing every call and a breaker that opens after three failures
    upstream = Upstream(500)
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, cool_down=30.0, clock=clock)
    url = await start(serve, upstream)
    client = ServiceClient(session, "products", url, retries=0, breaker=breaker)
    for _ in range(3):
        with pytest.raises(BadGateway):
            await client.request("GET", "/thing")
    # when it is called again, then it fails fast without touching the upstream
    with pytest.raises(ServiceUnavailable):
        await client.request("GET", "/thing")
    assert len(upstream.hits) == 3
    # when the cool-down has passed and the upstream recovered, then one trial goes through
    clock.now += 30.0
    upstream.statuses = [200]
    response = await client.request("GET", "/thing")
    # then the breaker closes again
    assert response.status == 200
    assert len(upstream.hits) == 4
    assert breaker.state is BreakerState.CLOSED


async def test_a_failed_trial_reopens_the_breaker(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    # given an open breaker in front of an upstream that still fails
    upstream = Upstream(503)
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, cool_down=10.0, clock=clock)
    url = await start(serve, upstream)
    client = ServiceClient(session, "products", url, retries=0, breaker=breaker)
    with pytest.raises(BadGateway):
        await client.request("GET", "/thing")
    clock.now += 10.0
    # when the trial fails
    with pytest.raises(BadGateway):
        await client.request("GET", "/thing")
    # then the breaker is open for another cool-down
    with pytest.raises(ServiceUnavailable):
        await client.request("GET", "/thing")
    assert len(upstream.hits) == 2
    assert breaker.state is BreakerState.OPEN


def test_a_half_open_breaker_lets_only_one_trial_through() -> None:
    # given a breaker whose cool-down has passed
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, cool_down=5.0, clock=clock)
    breaker.failed()
    clock.now += 5.0
    # when two calls ask to go out, then only the first may
    assert breaker.allow() is True
    assert breaker.allow() is False
    # when the trial never reports back (its caller was cancelled), then another cool-down frees it
    clock.now += 5.0
    assert breaker.allow() is True


async def test_calls_are_counted_by_upstream_and_outcome(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    # given a client with metrics and an upstream that fails once
    upstream = Upstream(503, 200)
    metrics = Metrics.create("orders")
    url = await start(serve, upstream)
    client = ServiceClient(session, "products", url, metrics=metrics, caller="orders")
    # when a GET is retried to success
    await client.request("GET", "/thing")

    # then every attempt is counted with its outcome
    def count(outcome: str) -> float | None:
        labels = {"service": "orders", "upstream": "products", "outcome": outcome}
        return metrics.registry.get_sample_value("upstream_calls_total", labels)

    assert (count("server_error"), count("ok")) == (1.0, 1.0)
