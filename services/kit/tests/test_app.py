"""The app factory, served for real: request ids, problems, access rules, probes, metrics."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from shopkit.app import build_app
from shopkit.auth import StaticKeys, principal, public, requires
from shopkit.keys import READINESS
from shopkit.problems import PROBLEM_JSON
from shopkit.schemas import read_json
from shopkit.settings import KitSettings, load

Serve = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
SIGNING_KEY = ECKey.generate_key("P-256", parameters={"kid": "test"}, private=True)


def make_app(service_env: dict[str, str]) -> web.Application:
    settings = load(KitSettings, {**service_env, "SERVICE_NAME": "t"})
    app = build_app(
        settings, keys=lambda _: StaticKeys(lambda: KeySet([SIGNING_KEY])), events=False
    )

    @public
    async def show(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"]})

    @public
    async def echo(request: web.Request) -> web.Response:
        return web.json_response(await read_json(request))

    @public
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    async def me(request: web.Request) -> web.Response:
        return web.json_response({"sub": principal(request).subject})

    @requires("admin")
    async def admin(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/things/{id}", show)
    app.router.add_post("/echo", echo)
    app.router.add_get("/broken", broken)
    app.router.add_get("/me", me)
    app.router.add_get("/admin", admin)
    return app


def bearer(subject: str, *roles: str, audience: str = "shop") -> dict[str, str]:
    claims = {
        "iss": "https://shop.test",
        "aud": audience,
        "sub": subject,
        "exp": int(time.time()) + 300,
        "roles": list(roles),
    }
    token = jwt.encode({"alg": "ES256", "kid": "test"}, claims, SIGNING_KEY)
    return {"Authorization": f"Bearer {token}"}


async def test_a_sane_request_id_is_kept_and_an_insane_one_replaced(
    serve: Serve, service_env: dict[str, str]
) -> None:
    client = await serve(make_app(service_env))
    # when a caller sends a usable request id, then it comes back
    kept = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["X-Request-ID"] == "abc-123"
    # when it sends garbage, then a fresh id replaces it
    replaced = await client.get("/healthz", headers={"X-Request-ID": "not a valid id!"})
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["X-Request-ID"])


async def test_an_unknown_route_is_a_404_problem(serve: Serve, service_env: dict[str, str]) -> None:
    client = await serve(make_app(service_env))
    response = await client.get("/nowhere")
    assert response.status == 404
    assert response.content_type == PROBLEM_JSON


async def test_a_wrong_method_is_a_405_problem_naming_the_allowed_ones(
    serve: Serve, service_env: dict[str, str]
) -> None:
    client = await serve(make_app(service_env))
    response = await client.get("/echo")
    assert response.status == 405
    assert response.content_type == PROBLEM_JSON
    assert response.headers["Allow"] == "POST"


async def test_an_unhandled_error_is_a_500_problem_without_internals(
    serve: Serve, service_env: dict[str, str]
) -> None:
    # given a handler with a bug
    client = await serve(make_app(service_env))
    # when it is called
    response = await client.get("/broken")
    # then the client sees a plain problem that shares the request id with the log line
    text = await response.text()
    assert response.status == 500
    assert "secret internals" not in text
    assert "Traceback" not in text
    problem = await response.json(content_type=PROBLEM_JSON)
    assert problem["request_id"] == response.headers["X-Request-ID"]


async def test_malformed_json_is_400_and_an_oversized_body_is_413(
    serve: Serve, service_env: dict[str, str]
) -> None:
    client = await serve(make_app(service_env))
    headers = {"Content-Type": "application/json"}
    malformed = await client.post("/echo", data=b"{not json", headers=headers)
    oversized = await client.post("/echo", data=b"[" + b"1," * 600_000 + b"1]", headers=headers)
    assert (malformed.status, oversized.status) == (400, 413)
    assert oversized.content_type == PROBLEM_JSON


async def test_a_route_without_an_access_rule_needs_a_token(
    serve: Serve, service_env: dict[str, str]
) -> None:
    client = await serve(make_app(service_env))
    # when no token is sent, then the caller is told how to authenticate
    anonymous = await client.get("/me")
    assert anonymous.status == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    # when a valid token is sent, then the handler sees its subject
    signed = await client.get("/me", headers=bearer("u-1", "customer"))
    assert (signed.status, await signed.json()) == (200, {"sub": "u-1"})


async def test_a_token_for_another_audience_is_refused(
    serve: Serve, service_env: dict[str, str]
) -> None:
    client = await serve(make_app(service_env))
    response = await client.get("/me", headers=bearer("u-1", "customer", audience="elsewhere"))
    assert response.status == 401


async def test_a_missing_role_is_a_403(serve: Serve, service_env: dict[str, str]) -> None:
    client = await serve(make_app(service_env))
    customer = await client.get("/admin", headers=bearer("u-1", "customer"))
    admin = await client.get("/admin", headers=bearer("u-2", "admin"))
    assert (customer.status, admin.status) == (403, 200)


async def test_ready_when_the_database_answers_and_not_when_a_check_fails(
    serve: Serve, service_env: dict[str, str]
) -> None:
    # given one app with its database and one with a failing dependency
    healthy = await serve(make_app(service_env))
    sick_app = make_app(service_env)

    async def failing(app: web.Application) -> None:
        raise ConnectionError("broker down")

    sick_app[READINESS].append(("broker", failing))
    sick = await serve(sick_app)
    # then only the first is ready, and the second names what fails
    assert (await healthy.get("/readyz")).status == 200
    response = await sick.get("/readyz")
    problem = await response.json(content_type=PROBLEM_JSON)
    assert response.status == 503
    assert problem["checks"] == {"broker": "ConnectionError"}


async def test_requests_are_counted_by_route_template(
    serve: Serve, service_env: dict[str, str]
) -> None:
    # given a request to a route with a path parameter
    client = await serve(make_app(service_env))
    await client.get("/things/abc")
    # when metrics are scraped
    text = await (await client.get("/metrics")).text()
    # then the template, not the concrete path, labels the request
    assert 'route="/things/{id}"' in text
    assert "/things/abc" not in text
