"""Revoked subjects and sessions: the in-process set, and its feed from JetStream into the verifier."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from nats.aio.client import Client as Nats

from shopkit import broker
from shopkit.app import build_app
from shopkit.auth import principal
from shopkit.events import Event, encode
from shopkit.revocations import ISSUER, Revocations, access_revoked, session_revoked
from shopkit.settings import KitSettings, load
from shopkit.testing.tokens import TokenFactory

Serve = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


def test_a_subject_cut_off_refuses_its_tokens_issued_up_to_it_only() -> None:
    revocations = Revocations()
    now = time.time()
    revocations.revoke_subject("u1", issued_before=now, expires_at=now + 900)
    # A cut-off that arrives late (a replay) does not move the later one back.
    revocations.revoke_subject("u1", issued_before=now - 60, expires_at=now + 840)

    assert revocations.refuses("u1", None, issued_at=now - 1)
    assert revocations.refuses("u1", "any-session", issued_at=now)
    assert not revocations.refuses("u1", None, issued_at=now + 0.001)
    assert not revocations.refuses("u2", None, issued_at=now - 1)


def test_a_revoked_session_refuses_every_token_of_it_and_no_other() -> None:
    revocations = Revocations()
    revocations.revoke_session("s1", expires_at=time.time() + 900)

    assert revocations.refuses("u1", "s1", issued_at=time.time() + 10)
    assert not revocations.refuses("u1", "s2", issued_at=0)
    assert not revocations.refuses("u1", None, issued_at=0)


def test_entries_are_forgotten_once_their_tokens_have_expired() -> None:
    revocations = Revocations(leeway=30)
    now = time.time()
    # Expired, but within the leeway the verifier still accepts tokens for: kept.
    revocations.revoke_session("within-leeway", expires_at=now - 10)
    revocations.revoke_subject("within-leeway", issued_before=now - 910, expires_at=now - 10)
    # Past expiry and leeway: nothing to refuse any more.
    revocations.revoke_session("gone", expires_at=now - 31)
    revocations.revoke_subject("gone", issued_before=now - 931, expires_at=now - 31)

    assert (revocations.size("subject"), revocations.size("session")) == (1, 1)
    assert not revocations.refuses("gone", "gone", issued_at=0)


async def test_a_published_revocation_makes_every_instance_refuse_the_token(
    serve: Serve, service_env: dict[str, str], nats_client: Nats
) -> None:
    # given two instances of a service, and a token both accept
    tokens = TokenFactory()

    async def me(request: web.Request) -> web.Response:
        return web.json_response({"sub": principal(request).subject})

    async def start() -> TestClient[Any, Any]:
        settings = load(KitSettings, {**service_env, "SERVICE_NAME": "revoking"})
        app = build_app(settings, keys=tokens.keys(), database=False)
        app.router.add_get("/me", me)
        return await serve(app)

    instances = [await start(), await start()]
    subject, session = uuid.uuid4().hex, uuid.uuid4().hex
    by_subject = {"Authorization": f"Bearer {tokens.mint(subject, 'customer')}"}
    by_session = {"Authorization": f"Bearer {tokens.mint('other', 'customer', sid=session)}"}
    for instance in instances:
        assert (await instance.get("/me", headers=by_subject)).status == 200

    # when the issuer publishes a malformed message, then revokes the subject and the session
    js = nats_client.jetstream()
    await broker.ensure_stream(js, ISSUER)
    now = datetime.now(UTC)
    await js.publish(broker.subject(ISSUER, "access.revoked"), b"not json")
    for kind, data in (
        access_revoked(subject, now + timedelta(seconds=1), 900, "disabled"),
        session_revoked(session, "other", now, 900, "logout"),
    ):
        event = Event(
            id=uuid.uuid4().hex,
            stream_id=f"user-{subject}",
            seq=1,
            type=kind,
            data=data,
            occurred_at=now,
        )
        await js.publish(broker.subject(ISSUER, kind), encode(event))

    # then, within moments, every instance refuses both tokens (and nothing else)
    for instance in instances:
        for auth in (by_subject, by_session):
            assert await _refused(instance, auth)
    other = {"Authorization": f"Bearer {tokens.mint(uuid.uuid4().hex, 'customer')}"}
    assert (await instances[0].get("/me", headers=other)).status == 200


async def _refused(client: TestClient[Any, Any], auth: dict[str, str]) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if (await client.get("/me", headers=auth)).status == 401:
            return True
        await asyncio.sleep(0.05)
    return False
