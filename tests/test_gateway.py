"""The nginx gateway, end to end: routing, request ids, security headers, limits, problem bodies."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import aiohttp
import gateway as gateway_config  # scripts/, put on sys.path by conftest.py
import pytest
import registry
from e2e_support import ORDERS_CLIENT_SECRET, STRIPE_WEBHOOK_SECRET
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from shopkit import problems
from shopkit.testing.peers import free_port
from shopkit.testing.stripe import sign_webhook


class StartGateway(Protocol):
    def __call__(
        self,
        upstreams: Mapping[str, Sequence[str]],
        routes: Sequence[gateway_config.Route] | None = None,
        internal_port: int | None = None,
    ) -> str: ...


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
GATEWAY_NOT_FOUND = gateway_config.GATEWAY_PROBLEMS[404][1]
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def assert_security_headers(headers: CIMultiDictProxy[str]) -> None:
    for name, value in SECURITY_HEADERS.items():
        # Exactly once: the gateway owns these headers even when the upstream sets its own.
        assert headers.getall(name, []) == [value], name


async def problem(response: aiohttp.ClientResponse, status: int) -> dict[str, object]:
    assert response.status == status
    assert response.content_type == "application/problem+json"
    body: dict[str, object] = await response.json(content_type=None)
    assert body["status"] == status
    assert {"type", "title", "detail", "request_id"} <= body.keys()
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


async def test_the_gateway_answers_its_own_health_check(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
        assert_security_headers(response.headers)


async def test_an_unrouted_path_is_a_not_found_problem_with_security_headers(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway}/api/v1/nothing-here") as response:
        body = await problem(response, 404)
        assert body["detail"] == GATEWAY_NOT_FOUND
        assert body["instance"] == "/api/v1/nothing-here"
        assert_security_headers(response.headers)
        assert "nginx/" not in response.headers.get("Server", "")


@pytest.mark.parametrize(
    "path",
    [
        "/internal/users/x",
        "/internal/payments",
        "/internal/payments/openapi.json",
        "/internal/inventory/reservations",
        "/internal/carts/openapi.json",
        "/api/v1/users/internal/x",
        "/api/v1/auth/internal",
        "/api/v1/users/%2e%2e/%2e%2e/internal/x",
        "/api/v1/users/..%2F..%2Finternal/x",
    ],
)
async def test_internal_routes_are_never_routed(
    gateway: str, http: aiohttp.ClientSession, path: str
) -> None:
    async with http.get(URL(gateway + path, encoded=True)) as response:
        body = await problem(response, 404)
        # nginx's own answer, not a 404 from a service the request reached.
        assert body["detail"] == GATEWAY_NOT_FOUND


async def test_a_body_over_one_mib_is_a_payload_too_large_problem(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    body = b"x" * (1024 * 1024 + 1)
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{gateway}/api/v1/auth/register", data=body, headers=headers) as response:
        await problem(response, 413)
        assert_security_headers(response.headers)


async def test_a_large_body_under_the_limit_reaches_the_service(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    body = b"x" * (512 * 1024)
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{gateway}/api/v1/auth/register", data=body, headers=headers) as response:
        # The service's own verdict on the body: not JSON.
        assert response.status == 400
        assert response.content_type == "application/problem+json"


async def test_a_given_request_id_is_echoed(gateway: str, http: aiohttp.ClientSession) -> None:
    headers = {"X-Request-ID": "client-id-123"}
    async with http.get(f"{gateway}/api/v1/auth/jwks", headers=headers) as response:
        assert response.status == 200
        assert response.headers.getall("X-Request-ID") == ["client-id-123"]
    async with http.get(f"{gateway}/nowhere", headers=headers) as response:
        body = await problem(response, 404)
        assert body["request_id"] == "client-id-123"


async def test_a_request_id_is_generated_when_absent_or_unusable(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    ids = []
    for headers in ({}, {}, {"X-Request-ID": 'not "safe" {json}'}):
        async with http.get(f"{gateway}/api/v1/auth/jwks", headers=headers) as response:
            assert response.status == 200
            [request_id] = response.headers.getall("X-Request-ID")
            assert GENERATED_ID.match(request_id)
            ids.append(request_id)
    assert len(set(ids)) == 3


async def test_security_headers_are_on_a_proxied_success(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway}/api/v1/users/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
        assert "/api/v1/auth/login" in document["paths"]
        assert_security_headers(response.headers)


@pytest.mark.parametrize("path", ["/api/v1/users", "/api/v1/users/me"])
async def test_a_services_own_problem_passes_through_untouched(
    gateway: str, http: aiohttp.ClientSession, path: str
) -> None:
    async with http.get(f"{gateway}{path}") as response:
        body = await problem(response, 401)
        # The service's problem (with its auth challenge), not one the gateway wrote over it.
        assert str(body["type"]).endswith("/unauthorized")
        assert "WWW-Authenticate" in response.headers
        assert_security_headers(response.headers)


async def test_hammering_login_is_rate_limited(
    start_gateway: StartGateway,
    users_instances: list[str],
    http: aiohttp.ClientSession,
) -> None:
    # A gateway of its own, so the spent rate limit cannot touch other tests' logins.
    base = start_gateway({"users": users_instances})

    async def login() -> tuple[int, str, str, str]:
        # An empty body fails validation fast: no password hashing on the way.
        async with http.post(f"{base}/api/v1/auth/login", json={}) as response:
            retry_after = response.headers.get("Retry-After", "")
            return response.status, response.content_type, await response.text(), retry_after

    answers = await asyncio.gather(*(login() for _ in range(60)))

    statuses = sorted({status for status, *_ in answers})
    assert 429 in statuses, statuses
    assert len(statuses) > 1, statuses
    _, content_type, body, retry_after = next(answer for answer in answers if answer[0] == 429)
    assert content_type == "application/problem+json"
    assert json.loads(body)["type"].endswith("/too-many-requests")
    assert retry_after == "1"


async def test_a_dead_upstream_is_a_bad_gateway_problem(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    base = start_gateway({"users": [f"127.0.0.1:{free_port()}"]})
    for _ in range(2):  # the second finds the server already marked down
        async with http.get(f"{base}/api/v1/users/me") as response:
            assert response.status in (502, 503)
            await problem(response, response.status)
            assert_security_headers(response.headers)


async def raw_exchange(base: str, request: bytes) -> bytes:
    """Send bytes as given and read the whole answer (the gateway then closes the connection).

    Malformed requests go this way: an HTTP client refuses to send them.
    """
    url = URL(base)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


def parse_response(raw: bytes) -> tuple[int, CIMultiDict[str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    assert status_line.startswith("HTTP/1.1 "), status_line
    assert int(headers["Content-Length"]) == len(body)
    return int(status_line.split(" ")[1]), headers, body


def raw_problem(raw: bytes, status: int, slug: str) -> tuple[CIMultiDict[str], dict[str, object]]:
    """The answer is a problem+json of `status` and `slug`, with the gateway's headers."""
    answered, headers, body = parse_response(raw)
    assert answered == status, raw[:300]
    assert headers["Content-Type"] == "application/problem+json"
    problem: dict[str, object] = json.loads(body)
    assert problem["status"] == status
    assert problem["type"] == problems.TYPE_BASE + slug
    assert problem["request_id"] == headers["X-Request-ID"]
    assert_security_headers(CIMultiDictProxy(headers))
    return headers, problem


def request(target: bytes, method: bytes = b"GET", version: bytes = b"HTTP/1.1") -> bytes:
    return (
        method
        + b" "
        + target
        + b" "
        + version
        + b"\r\nHost: shop.test\r\nConnection: close\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("raw", "status", "slug"),
    [
        pytest.param(request(b"/api/v1/users/%00"), 400, "bad-request", id="nul-escape"),
        pytest.param(request(b"/api/v1/users/%zz"), 400, "bad-request", id="bad-escape"),
        pytest.param(request(b"/api/v1/users/%4"), 400, "bad-request", id="truncated-escape"),
        pytest.param(request(b"/api/v1/users/a\x01b"), 400, "bad-request", id="control-char"),
        pytest.param(request(b"/api/v1/users/a\x7fb"), 400, "bad-request", id="delete-char"),
        pytest.param(request(b"/../../etc/passwd"), 400, "bad-request", id="dot-dot-above-root"),
        pytest.param(request(b"/api/v1/../../../x"), 400, "bad-request", id="dot-dot-deep"),
        pytest.param(request(b"/", method=b"G3T"), 400, "bad-request", id="invalid-method"),
        pytest.param(request(b"/", method=b"get"), 400, "bad-request", id="lowercase-method"),
        # nginx cannot parse a CONNECT target in authority form: no tunnel, a plain 400.
        pytest.param(
            request(b"shop.test:443", method=b"CONNECT"), 400, "bad-request", id="connect-tunnel"
        ),
        pytest.param(request(b"/" + b"a" * 9000), 414, "uri-too-long", id="long-uri"),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: shop.test\r\nX-Long: "
            + b"a" * 9000
            + b"\r\nConnection: close\r\n\r\n",
            431,
            "header-fields-too-large",
            id="long-header",
        ),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: shop.test\r\nX-Bad: a\x00b\r\nConnection: close\r\n\r\n",
            400,
            "bad-request",
            id="nul-in-header",
        ),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: shop.test\r\nHost: other.test\r\n\r\n",
            400,
            "bad-request",
            id="two-hosts",
        ),
        pytest.param(request(b"/", version=b"HTTP/2.0"), 505, "http-version-not-supported"),
        pytest.param(request(b"/", version=b"HTTP/9.1"), 505, "http-version-not-supported"),
        pytest.param(
            b"POST /api/v1/auth/register HTTP/1.1\r\nHost: shop.test\r\n"
            b"Transfer-Encoding: gzip\r\nConnection: close\r\n\r\n",
            501,
            "not-implemented",
            id="unknown-transfer-coding",
        ),
    ],
)
async def test_a_malformed_request_is_a_problem_not_an_html_page(
    gateway: str, raw: bytes, status: int, slug: str
) -> None:
    raw_problem(await raw_exchange(gateway, raw), status, slug)


@pytest.mark.parametrize("method", [b"TRACE", b"CONNECT"])
async def test_trace_and_connect_are_not_allowed_and_say_what_is(
    gateway: str, method: bytes
) -> None:
    headers, _ = raw_problem(
        await raw_exchange(gateway, request(b"/api/v1/users/me", method=method)),
        405,
        "method-not-allowed",
    )
    allowed = {name.strip() for name in headers["Allow"].split(",")}
    assert {"GET", "POST"} <= allowed
    assert method.decode() not in allowed


async def test_a_services_own_method_not_allowed_keeps_its_allow_header(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    async with http.delete(f"{gateway}/api/v1/auth/jwks") as response:
        await problem(response, 405)
        # The service's list, not the gateway's generic one beside it.
        assert len(response.headers.getall("Allow")) == 1
        assert "DELETE" not in response.headers["Allow"]


async def test_http_0_9_gets_a_problem_body_since_it_cannot_carry_headers(gateway: str) -> None:
    raw = await raw_exchange(gateway, b"GET /api/v1/auth/jwks\r\n")
    # No status line, no headers: HTTP/0.9 has neither, so the body is all there is.
    problem = json.loads(raw)
    assert problem["status"] == 505
    assert problem["type"] == problems.TYPE_BASE + "http-version-not-supported"


@pytest.mark.parametrize("path", ["/api/v1/inventory", "/api/v1/auth", "/api/docs"])
async def test_no_redirect_is_built_from_the_host_header(gateway: str, path: str) -> None:
    raw = request(path.encode()).replace(b"Host: shop.test", b"Host: evil.example")
    answer = await raw_exchange(gateway, raw)
    status, headers, _ = parse_response(answer)
    assert "Location" not in headers
    assert b"evil.example" not in answer
    assert status in (200, 404)
    if status == 404:  # the gateway's or the service's own
        assert headers["Content-Type"].split(";")[0] == "application/problem+json"


async def test_a_prefix_route_without_its_exact_path_does_not_redirect_to_add_the_slash(
    start_gateway: StartGateway, users_instances: list[str], http: aiohttp.ClientSession
) -> None:
    # given a gateway routing only `/api/v1/auth/` (the registry routes both forms of a prefix)
    base = start_gateway(
        {"users": users_instances}, [gateway_config.Route("/api/v1/auth/", "users")]
    )
    # when a client asks for the path without the slash
    headers = {"Host": "evil.example"}
    async with http.get(f"{base}/api/v1/auth", headers=headers, allow_redirects=False) as response:
        # then the gateway says not found, where nginx alone would answer a 301 to evil.example
        body = await problem(response, 404)
        assert body["detail"] == GATEWAY_NOT_FOUND
        assert "Location" not in response.headers
    async with http.get(f"{base}/api/v1/auth/jwks") as response:
        assert response.status == 200


async def test_the_instance_of_a_problem_is_the_path_without_the_query(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway}/api/v1/nothing-here?token=secret") as response:
        body = await problem(response, 404)
        assert body["instance"] == "/api/v1/nothing-here"


# A reply with no HTTP status line at all nginx relays as an HTTP/0.9 body (it has no switch against
# that); the services are aiohttp, which always sends one.
@pytest.mark.parametrize(
    "answer",
    [b"", b"HTTP/1.1 200 OK\r\nBad\x00Name: x\r\n\r\n"],
    ids=["closes-at-once", "invalid-header"],
)
async def test_an_upstream_that_breaks_http_is_a_bad_gateway_problem(
    start_gateway: StartGateway, http: aiohttp.ClientSession, answer: bytes
) -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        writer.close()

    server = await asyncio.start_server(broken, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        base = start_gateway({"users": [f"127.0.0.1:{port}"]})
        async with http.get(f"{base}/api/v1/users/me") as response:
            await problem(response, 502)
            assert_security_headers(response.headers)
    finally:
        server.close()
        await server.wait_closed()


# --- the internal listener: where the services call each other (orders: carts, products, payments,
# users), loopback only, never rate-limited, never reachable through the public server


def test_the_internal_listener_is_loopback_only_unlimited_and_absent_unless_asked_for(
    tmp_path: Path,
) -> None:
    upstreams = {name: ["127.0.0.1:1"] for name in registry.load()}

    public_only = gateway_config.render(8080, upstreams, tmp_path)
    config = gateway_config.render(8080, upstreams, tmp_path, internal_port=8090)

    assert "8090" not in public_only
    internal = config[config.index("listen 127.0.0.1:8090;") :]
    assert internal.count("server {") == 0  # the last server of the config
    assert "deny all;" in internal
    assert "limit_req" not in internal
    assert "location /internal/inventory/ {" in internal
    assert "location = /internal/payments {" in internal
    assert "location /api/v1/auth/ {" in internal
    # nginx's counters for the metrics exporter: on the loopback listener, never the public one
    assert "location = /nginx_status {" in internal
    assert "stub_status" not in public_only
    # every listen of the whole config is on the loopback interface
    listens = re.findall(r"^\s*listen (\S+);", config, flags=re.MULTILINE)
    assert listens == ["127.0.0.1:8080", "127.0.0.1:8090"]


@pytest.mark.parametrize("service", ["products", "carts", "payments", "orders"])
async def test_the_internal_listener_routes_internal_paths_the_public_gateway_refuses(
    gateway: str, internal_url: str, http: aiohttp.ClientSession, service: str
) -> None:
    # given the gateway and its internal listener in front of every service
    path = f"/internal/{service}/openapi.json"
    # when a service asks the internal listener for another's internal document
    async with http.get(f"{internal_url}{path}") as response:
        # then that service answers it
        assert response.status == 200, await response.text()
        document = await response.json()
    assert document["info"]["title"] == f"{service} (internal)"
    assert all(route.startswith("/internal/") for route in document["paths"])
    # and the public gateway refuses the same path with its own not-found problem
    async with http.get(f"{gateway}{path}") as response:
        body = await problem(response, 404)
        assert body["detail"] == GATEWAY_NOT_FOUND


async def test_a_service_token_from_the_internal_listener_reaches_products_internal_routes(
    gateway: str, internal_url: str, http: aiohttp.ClientSession
) -> None:
    # given orders' service token, granted by users through the internal listener
    grant = {
        "grant_type": "client_credentials",
        "client_id": "orders",
        "client_secret": ORDERS_CLIENT_SECRET,
    }
    async with http.post(f"{internal_url}/api/v1/auth/token", json=grant) as response:
        assert response.status == 200, await response.text()
        token = (await response.json())["access_token"]
    path = "/internal/inventory/reservations/no-such-order"
    # when it asks products (prefix `inventory`) for a reservation that does not exist
    async with http.get(
        f"{internal_url}{path}", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        # then products itself answers (not the gateway's 404): the route reached it
        body = await problem(response, 404)
        assert body["detail"] != GATEWAY_NOT_FOUND
    # and without the token products refuses it: the listener adds no trust of its own
    async with http.get(f"{internal_url}{path}") as response:
        await problem(response, 401)


async def test_the_internal_listener_serves_public_routes_carts_and_orders_call(
    gateway: str, internal_url: str, http: aiohttp.ClientSession
) -> None:
    # carts' batch SKU lookup (PRODUCTS_URL) and the users routes orders reads (USERS_URL)
    async with http.get(f"{internal_url}/api/v1/products/skus", params={"skus": "NONE-1"}) as r:
        assert r.status == 200, await r.text()
    async with http.get(f"{internal_url}/api/v1/auth/jwks") as r:
        assert r.status == 200
    async with http.get(f"{internal_url}/api/v1/users/me") as r:
        await problem(r, 401)
    # and nothing else
    async with http.get(f"{internal_url}/internal/nothing/x") as r:
        body = await problem(r, 404)
        assert body["detail"] == GATEWAY_NOT_FOUND


async def test_the_internal_listener_does_not_rate_limit_the_services(
    gateway: str, internal_url: str, http: aiohttp.ClientSession
) -> None:
    async def login() -> int:
        # An empty body fails validation fast: no password hashing on the way.
        async with http.post(f"{internal_url}/api/v1/auth/login", json={}) as response:
            return response.status

    statuses = await asyncio.gather(*(login() for _ in range(60)))

    assert set(statuses) == {422}, statuses


# --- Stripe's webhooks: the raw body and its signature reach payments untouched


def _stripe_event(padding: int = 0) -> bytes:
    """A Stripe event as raw bytes no serializer would produce: odd whitespace, CRLFs, tabs, raw
    and escaped non-ASCII, key order of its own; its PaymentIntent is of no order (ignored)."""
    intent_id = "pi_" + uuid.uuid4().hex[:24]
    text = (
        '{\r\n  "id" :\t"evt_' + uuid.uuid4().hex[:24] + '",\n\n'
        '"object":"event",   "type": "payment_intent.succeeded",\r\n'
        '\t"created": ' + str(int(time.time())) + " ,\n"
        '  "data" : { "object" : {"id":"' + intent_id + '", "object": "payment_intent",'
        ' "amount": 1999, "currency": "eur", "status": "succeeded",\n'
        '  "description": "Grüße aus Zürich ☕ \\u00e9t\\u00e9 🎉 \\ud83d\\ude00 \\"quoted\\"",'
        ' "metadata": {"note": "' + "x" * padding + '"}}},\n'
        '  "livemode": false, "pending_webhooks": 1,'
        ' "request": {"id": null, "idempotency_key": null}  }  \r\n'
    )
    return text.encode()


async def _post_webhook(
    http: aiohttp.ClientSession, gateway: str, body: bytes, signature: str
) -> tuple[int, str, dict[str, object]]:
    headers = {"Stripe-Signature": signature, "Content-Type": "application/json; charset=utf-8"}
    async with http.post(
        f"{gateway}/api/v1/payments/webhooks/stripe", data=body, headers=headers
    ) as response:
        return response.status, response.content_type, await response.json(content_type=None)


@pytest.mark.parametrize("padding", [0, 300_000], ids=["small", "300-KB"])
async def test_a_signed_stripe_webhook_reaches_payments_byte_for_byte(
    gateway: str, http: aiohttp.ClientSession, padding: int
) -> None:
    # given an event with odd bytes, signed as Stripe signs it, with the header's extra parts
    # (Stripe sends a v0 and, while a secret rolls, several v1 signatures)
    body = _stripe_event(padding)
    json.loads(body)  # valid JSON all the same
    signature = sign_webhook(body, STRIPE_WEBHOOK_SECRET)
    timestamp, valid = signature.split(",")
    header = f"{timestamp},v1={'0' * 64},{valid},v0=ignored"

    # when it is delivered through the gateway
    status, _, answer = await _post_webhook(http, gateway, body, header)

    # then payments verified the signature over the very bytes signed, and read the event
    assert status == 200, answer
    assert answer == {"received": True, "outcome": "unknown"}


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda body: body.replace(b"1999", b"1990"), id="amount-changed"),
        pytest.param(lambda body: body.replace(b"\r\n", b"\n"), id="line-endings-normalised"),
        pytest.param(lambda body: body.strip(), id="whitespace-trimmed"),
    ],
)
async def test_a_tampered_stripe_webhook_is_refused_through_the_gateway(
    gateway: str, http: aiohttp.ClientSession, tamper: Callable[[bytes], bytes]
) -> None:
    # given a signed event whose bytes changed after signing
    body = _stripe_event()
    signature = sign_webhook(body, STRIPE_WEBHOOK_SECRET)
    altered = tamper(body)
    assert altered != body

    # when it is delivered through the gateway
    status, content_type, answer = await _post_webhook(http, gateway, altered, signature)

    # then payments refuses it
    assert status == 400
    assert content_type == "application/problem+json"
    assert str(answer["type"]).endswith("/invalid-signature")
