"""Idempotency-Key on real FerretDB: one run per key, replays, conflicts, released keys, purge."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from pymongo.asynchronous.database import AsyncDatabase

from shopkit import mongo
from shopkit.app import build_app
from shopkit.auth import StaticKeys, optional_principal, public
from shopkit.idempotency import (
    COLLECTION,
    ensure_indexes,
    idempotent,
    purge_expired,
    sweeper,
)
from shopkit.problems import PROBLEM_JSON, NotFound, ServiceUnavailable
from shopkit.settings import KitSettings, load
from shopkit.testing.explain import ExplainedMongo

Serve = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
SIGNING_KEY = ECKey.generate_key("P-256", parameters={"kid": "test"}, private=True)


@dataclass
class Shop:
    """The app under test and how many times each handler really ran."""

    app: web.Application
    runs: dict[str, int] = field(default_factory=dict)
    # The first run of /gated signals `entered`, then waits for `gate`: a holder that stalls.
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event = field(default_factory=asyncio.Event)


def make_shop(service_env: dict[str, str], *, pause: float = 0.0) -> Shop:
    settings = load(KitSettings, {**service_env, "SERVICE_NAME": "t"})
    app = build_app(
        settings, keys=lambda _: StaticKeys(lambda: KeySet([SIGNING_KEY])), events=False
    )
    shop = Shop(app)

    def ran(name: str) -> int:
        shop.runs[name] = shop.runs.get(name, 0) + 1
        return shop.runs[name]

    @public
    @idempotent()
    async def create(request: web.Request) -> web.Response:
        run = ran("create")
        body = await request.json()
        await asyncio.sleep(pause)
        caller = optional_principal(request)
        answer = {"run": run, "echo": body, "caller": caller.subject if caller else None}
        return web.json_response(answer, status=201, headers={"Location": f"/things/{run}"})

    @public
    @idempotent()
    async def flaky(request: web.Request) -> web.Response:
        if ran("flaky") == 1:
            raise ServiceUnavailable("the payment provider is down")
        return web.json_response({"ok": True}, status=201)

    @public
    @idempotent()
    async def crashing(request: web.Request) -> web.Response:
        if ran("crashing") == 1:
            raise RuntimeError("a bug")
        return web.json_response({"ok": True}, status=201)

    @public
    @idempotent()
    async def missing(request: web.Request) -> web.Response:
        ran("missing")
        raise NotFound("no such thing")

    @public
    @idempotent()
    async def gated(request: web.Request) -> web.Response:
        run = ran("gated")
        if run == 1:
            shop.entered.set()
            await shop.gate.wait()
        return web.json_response({"run": run}, status=201)

    @public
    @idempotent(required=False)
    async def optional(request: web.Request) -> web.Response:
        ran("optional")
        return web.json_response({}, status=201)

    app.router.add_post("/things", create)
    app.router.add_post("/flaky", flaky)
    app.router.add_post("/crashing", crashing)
    app.router.add_post("/missing", missing)
    app.router.add_post("/gated", gated)
    app.router.add_post("/optional", optional)
    return shop


def token_for(subject: str) -> str:
    claims = {
        "iss": "https://shop.test",
        "aud": "shop",
        "sub": subject,
        "exp": int(time.time()) + 300,
        "roles": ["customer"],
    }
    return jwt.encode({"alg": "ES256", "kid": "test"}, claims, SIGNING_KEY)


def headers(key: str | None = None, subject: str | None = None) -> dict[str, str]:
    found = {} if key is None else {"Idempotency-Key": key}
    if subject is not None:
        found["Authorization"] = f"Bearer {token_for(subject)}"
    return found


async def test_the_same_key_and_body_replay_the_first_response_and_the_handler_runs_once(
    serve: Serve, service_env: dict[str, str]
) -> None:
    # given a completed request
    shop = make_shop(service_env)
    client = await serve(shop.app)
    first = await client.post("/things", json={"name": "mug"}, headers=headers("k-1"))
    # when it is repeated with the same key and body
    again = await client.post("/things", json={"name": "mug"}, headers=headers("k-1"))
    # then the first response comes back, marked as a replay, and the handler ran once
    assert (first.status, again.status) == (201, 201)
    assert await again.read() == await first.read()
    assert again.headers["Content-Type"] == first.headers["Content-Type"]
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert shop.runs == {"create": 1}


async def test_concurrent_requests_with_one_key_run_the_handler_once(
    serve: Serve, service_env: dict[str, str]
) -> None:
    # given a handler that takes a moment
    shop = make_shop(service_env, pause=0.3)
    client = await serve(shop.app)
    # when twenty copies of one request arrive at once
    responses = await asyncio.gather(
        *(client.post("/things", json={"n": 1}, headers=headers("k-race")) for _ in range(20))
    )
    # then the handler ran once; the others were told it is in flight or got the replay
    statuses = sorted(response.status for response in responses)
    assert shop.runs == {"create": 1}
    assert set(statuses) <= {201, 409}
    assert statuses.count(201) >= 1
    conflict = next(r for r in responses if r.status == 409)
    assert conflict.content_type == PROBLEM_JSON
    assert conflict.headers["Retry-After"] == "1"
    # and once it finished, a retry is a replay
    retry = await client.post("/things", json={"n": 1}, headers=headers("k-race"))
    assert (retry.status, retry.headers["Idempotent-Replayed"]) == (201, "true")


async def test_the_same_key_with_another_body_is_a_422_problem(
    serve: Serve, service_env: dict[str, str]
) -> None:
    # given a completed request
    shop = make_shop(service_env)
    client = await serve(shop.app)
    await client.post("/things", json={"name": "mug"}, headers=headers("k-2"))
    # when the key is reused with another body
    reused = await client.post("/things", json={"name": "cup"}, headers=headers("k-2"))
    # then it is refused as a misuse of the key
    problem = await reused.json(content_type=PROBLEM_JSON)
    assert reused.status == 422
    assert problem["type"].endswith("/idempotency-key-reused")
    assert shop.runs == {"create": 1}


async def test_a_missing_key_is_a_400_problem_naming_the_header(
    serve: Serve, service_env: dict[str, str]
) -> None:
    # given a route that requires a key
    shop = make_shop(service_env)
    client = await serve(shop.app)
    # when it is called without one
    response = await client.post("/things", json={})
    # then it is refused before the handler runs
    problem = await response.json(content_type=PROBLEM_JSON)
    assert response.status == 400
    assert "Idempotency-Key" in problem["detail"]
    assert shop.runs == {}


async def test_a_key_that_is_not_visible_ascii_or_too_long_is_a_400(
    serve: Serve, service_env: dict[str, str]
) -> None:
    # given a route that requires a key
    shop = make_shop(service_env)
    client = await serve(shop.app)
    # when it is called with keys that break the format
    spaced = await client.post("/things", json={}, headers=headers("a key"))
    long = await client.post("/things", json={}, headers=headers("k" * 256))
    # then both are refused before the handler runs
    assert (spaced.status, long.status) == (400, 400)
    assert shop.runs == {}


async def test_an_optional_key_may_be_left_out(serve: Serve, service_env: dict[str, str]) -> None:
    # given a route where the key is optional
    shop = make_shop(service_env)
    client = await serve(shop.app)
    # when it is called twice without a key, then both calls run
    for _ in range(2):
        assert (await client.post("/optional", json={})).status == 201
    assert shop.runs == {"optional": 2}


async def test_a_handler_failing_with_5xx_releases_the_key_so_a_retry_runs(
    serve: Serve, service_env: dict[str, str]
) -> None:
    # given a request whose handler failed with a 503 problem
    shop = make_shop(service_env)
    client = await serve(shop.app)
    failed = await client.post("/flaky", json={}, headers=headers("k-3"))
    # when the client retries with the same key
    retried = await client.post("/flaky", json={}, headers=headers("k-3"))
    # then the handler runs again and its success is the answer
    assert (failed.status, retried.status) == (503, 201)
    assert "Idempotent-Replayed" not in retried.headers
    assert shop.runs == {"flaky": 2}


async def test_an_unexpected_error_releases_the_key_so_a_retry_runs(
    serve: Serve, service_env: dict[str, str]
) -> None:
    # given a request whose handler crashed
    shop = make_shop(service_env)
    client = await serve(shop.app)
    failed = await client.post("/crashing", json={}, headers=headers("k-4"))
    # when the client retries with the same key, then the handler runs again
    retried = await client.post("/crashing", json={}, headers=headers("k-4"))
    assert (failed.status, retried.status) == (500, 201)
    assert shop.runs == {"crashing": 2}


async def test_a_deterministic_4xx_is_stored_and_replayed(
    serve: Serve, service_env: dict[str, str]
) -> None:
    # given a request answered with a 404 problem
    shop = make_shop(service_env)
    client = await serve(shop.app)
    first = await client.post("/missing", json={}, headers=headers("k-5"))
    # when it is repeated, then the same problem is replayed without running the handler
    again = await client.post("/missing", json={}, headers=headers("k-5"))
    assert (first.status, again.status) == (404, 404)
    assert again.content_type == PROBLEM_JSON
    assert again.headers["Idempotent-Replayed"] == "true"
    assert shop.runs == {"missing": 1}


async def test_two_principals_using_the_same_key_do_not_collide(
    serve: Serve, service_env: dict[str, str]
) -> None:
    # given two users who happen to pick the same key
    shop = make_shop(service_env)
    client = await serve(shop.app)
    # when each sends the same request with it
    alice = await client.post("/things", json={"n": 1}, headers=headers("k-6", "alice"))
    bob = await client.post("/things", json={"n": 1}, headers=headers("k-6", "bob"))
    # then each request ran for its own caller
    assert (alice.status, bob.status) == (201, 201)
    assert "Idempotent-Replayed" not in bob.headers
    assert (await alice.json())["caller"] == "alice"
    assert (await bob.json())["caller"] == "bob"
    assert shop.runs == {"create": 2}


async def test_a_fresh_claim_is_in_flight_but_a_stale_one_is_taken_over(
    serve: Serve, service_env: dict[str, str], db: AsyncDatabase[Any]
) -> None:
    # given a request whose record looks like a claim still being processed
    shop = make_shop(service_env)
    client = await serve(shop.app)
    await client.post("/things", json={}, headers=headers("k-7"))
    await db[COLLECTION].update_many({}, {"$set": {"state": "in_flight"}})
    # when it is retried, then it must wait
    busy = await client.post("/things", json={}, headers=headers("k-7"))
    assert busy.status == 409
    # when the claim is old enough to belong to a crashed request
    await crash_every_claim(db)
    retried = await client.post("/things", json={}, headers=headers("k-7"))
    # then the retry takes it over and runs, and the takeover's answer is the one replayed
    assert retried.status == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert shop.runs == {"create": 2}
    again = await client.post("/things", json={}, headers=headers("k-7"))
    assert (again.headers["Idempotent-Replayed"], (await again.json())["run"]) == ("true", 2)


async def test_concurrent_retries_after_a_crash_take_the_stale_claim_over_once(
    serve: Serve, service_env: dict[str, str], db: AsyncDatabase[Any]
) -> None:
    # given keys whose requests crashed mid-way: their claims are still in flight, and stale
    # (fifty keys at once, so the interleavings a takeover must survive do occur)
    shop = make_shop(service_env, pause=0.3)
    client = await serve(shop.app)
    keys = [f"k-crash-{n}" for n in range(50)]
    await asyncio.gather(*(client.post("/things", json={}, headers=headers(key)) for key in keys))
    await crash_every_claim(db)
    # when ten retries of each arrive at once
    responses = await asyncio.gather(
        *(client.post("/things", json={}, headers=headers(key)) for key in keys for _ in range(10))
    )
    # then one retry per key took the claim over and ran; the others were told to wait
    answers = Counter((r.status, r.headers.get("Idempotent-Replayed")) for r in responses)
    assert shop.runs == {"create": 2 * len(keys)}
    assert answers[(201, None)] == len(keys)
    assert set(answers) <= {(201, None), (201, "true"), (409, None)}
    # and a later retry replays the takeover's answer
    retry = await client.post("/things", json={}, headers=headers(keys[0]))
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert (await retry.json())["run"] > len(keys)


async def test_a_takeover_whose_holder_crashed_too_is_taken_over_once_more(
    serve: Serve, service_env: dict[str, str], db: AsyncDatabase[Any]
) -> None:
    # given a key whose request crashed, and whose takeover then crashed as well
    shop = make_shop(service_env, pause=0.3)
    client = await serve(shop.app)
    await client.post("/things", json={}, headers=headers("k-twice"))
    await crash_every_claim(db)
    await client.post("/things", json={}, headers=headers("k-twice"))
    await crash_every_claim(db)
    # when ten retries arrive at once
    responses = await asyncio.gather(
        *(client.post("/things", json={}, headers=headers("k-twice")) for _ in range(10))
    )
    # then exactly one of them ran, and its answer is the one replayed from now on
    assert shop.runs == {"create": 3}
    assert sorted(response.status for response in responses) == [201] + [409] * 9
    retry = await client.post("/things", json={}, headers=headers("k-twice"))
    assert (retry.headers["Idempotent-Replayed"], (await retry.json())["run"]) == ("true", 3)


async def test_a_slow_holder_finishing_after_a_takeover_does_not_change_the_replayed_answer(
    serve: Serve, service_env: dict[str, str], db: AsyncDatabase[Any]
) -> None:
    # given a request that stalls past the stale limit, and a retry that took its claim over
    shop = make_shop(service_env)
    client = await serve(shop.app)
    stalled = asyncio.create_task(client.post("/gated", json={}, headers=headers("k-slow")))
    await shop.entered.wait()
    await crash_every_claim(db)
    takeover = await client.post("/gated", json={}, headers=headers("k-slow"))
    # when the stalled request finishes after all
    shop.gate.set()
    slow = await stalled
    # then each got its own answer, and a retry replays the takeover's, which the client saw last
    assert ((await slow.json())["run"], (await takeover.json())["run"]) == (1, 2)
    retry = await client.post("/gated", json={}, headers=headers("k-slow"))
    assert (retry.headers["Idempotent-Replayed"], (await retry.json())["run"]) == ("true", 2)


async def test_claims_replays_and_takeovers_read_only_through_indexes(
    serve: Serve, service_env: dict[str, str], explained_mongo: ExplainedMongo, database_name: str
) -> None:
    # given the records on a database whose every full scan is reported
    records = mongo.client(explained_mongo.url)
    await ensure_indexes(records[database_name])
    shop = make_shop({**service_env, "MONGO_URL": explained_mongo.url})
    client = await serve(shop.app)
    try:
        # when a key is claimed, replayed and misused, and another is released and claimed again
        await client.post("/things", json={}, headers=headers("k-ix"))
        await client.post("/things", json={}, headers=headers("k-ix"))
        await client.post("/things", json={"other": 1}, headers=headers("k-ix"))
        await client.post("/flaky", json={}, headers=headers("k-ix-2"))
        await client.post("/flaky", json={}, headers=headers("k-ix-2"))
        # then no request read the records whole
        assert explained_mongo.scans(database_name) == []
        # and neither does taking over a crashed claim (the crash itself is planted by a scan)
        await crash_every_claim(records[database_name])
        planted = len(explained_mongo.scans(database_name))
        await client.post("/things", json={}, headers=headers("k-ix"))
        assert explained_mongo.scans(database_name)[planted:] == []
    finally:
        await records.close()


async def test_purge_deletes_only_old_records(db: AsyncDatabase[Any]) -> None:
    # given a record whose retention ended two days ago and one that ends today
    await ensure_indexes(db)
    records = db[COLLECTION]
    await records.insert_many(
        [
            {"_id": "old", "state": "completed", "purge_on": _day(ago=2)},
            {"_id": "new", "state": "completed", "purge_on": _day(ago=0)},
        ]
    )
    # when expired records are purged
    removed = await purge_expired(db)
    # then only the old one is gone
    assert removed == 1
    assert [r["_id"] async for r in records.find({})] == ["new"]


async def test_the_sweeper_purges_while_the_app_runs(
    serve: Serve, service_env: dict[str, str], db: AsyncDatabase[Any]
) -> None:
    # given an expired record and an app running the sweeper
    await db[COLLECTION].insert_one({"_id": "old", "state": "completed", "purge_on": _day(ago=2)})
    shop = make_shop(service_env)
    shop.app.cleanup_ctx.append(sweeper)
    # when the app starts
    await serve(shop.app)
    # then the record is purged soon
    for _ in range(100):
        if await db[COLLECTION].count_documents({}) == 0:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the sweeper did not purge the expired record")


async def crash_every_claim(db: AsyncDatabase[Any]) -> None:
    """Make every stored claim look like one whose holder died over a minute ago."""
    stale = _ago(seconds=120)
    await db[COLLECTION].update_many(
        {}, {"$set": {"state": "in_flight", "created_at": stale, "claimed_at": stale}}
    )


def _ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


def _day(ago: int) -> str:
    """A `purge_on` day, `ago` days before today."""
    return (datetime.now(UTC) - timedelta(days=ago)).date().isoformat()
