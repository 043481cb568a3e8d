"""What an attacker can repeat is throttled: current-password guesses and password reset mails;
and a reset request answers before its work, alike whether or not the account exists."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest
from users_support import Api, Client, eventually

from shopkit import clock
from users import resets
from users.keys import USERS

RESET = "/api/v1/auth/password-reset"


def _change(current: str) -> dict[str, str]:
    return {"current_password": current, "new_password": "a brand new horse"}


async def test_guesses_of_the_current_password_are_throttled_per_account(api: Api) -> None:
    # given a signed-in user (a stolen access token, say), allowed 5 wrong guesses
    auth = await api.user("guess@example.com")

    # when 5 guesses are wrong, and then the right password is tried
    wrong = [
        (
            await api.client.post(
                "/api/v1/users/me/password", json=_change(f"guess {n}"), headers=auth
            )
        )
        for n in range(5)
    ]
    right = await api.client.post(
        "/api/v1/users/me/password", json=_change("correct horse"), headers=auth
    )

    # then the wrong ones are 401, and then even the right one waits: guessing is over
    assert [r.status for r in wrong] == [401] * 5
    assert right.status == 429
    assert int(right.headers["Retry-After"]) > 0
    await api.login("guess@example.com", "correct horse")  # the password did not change


async def test_a_right_current_password_clears_the_wrong_guesses(api: Api) -> None:
    # given a user who mistyped the current password 4 times (of 5 allowed)
    auth = await api.user("typo@example.com")
    for n in range(4):
        await api.call(
            "POST", "/api/v1/users/me/password", 401, json=_change(f"typo {n}"), headers=auth
        )

    # when the right one is given, then the count starts again
    await api.call(
        "POST", "/api/v1/users/me/password", 204, json=_change("correct horse"), headers=auth
    )
    auth = {
        "Authorization": f"Bearer {(await api.login('typo@example.com', 'a brand new horse'))['access_token']}"
    }
    for n in range(5):
        await api.call(
            "POST", "/api/v1/users/me/password", 401, json=_change(f"again {n}"), headers=auth
        )


async def test_reset_requests_are_throttled_per_address_whatever_the_client(
    start_users: Any,
) -> None:
    # given a service allowing 2 reset mails per address, an account, and an address of none
    client: Client = await start_users(RESET_REQUESTS_PER_ADDRESS="2")
    api = Api(client)
    await api.register("bombed@example.com")

    async def ask(email: str, ip: str) -> int:
        response = await client.post(RESET, json={"email": email}, headers={"X-Real-IP": ip})
        return response.status

    # when each address is asked for 3 times, from 3 clients
    bombed = [await ask("bombed@example.com", f"198.51.100.{n}") for n in range(3)]
    ghost = [await ask("ghost@example.com", f"198.51.100.{n}") for n in range(3)]

    # then the third is refused, for the account as for the address of none (nothing revealed)
    assert bombed == ghost == [202, 202, 429]


async def test_reset_requests_are_throttled_per_client_whatever_the_address(
    start_users: Any,
) -> None:
    # given a service allowing 3 reset requests per client
    client: Client = await start_users(RESET_REQUESTS_PER_CLIENT="3")

    # when one client asks for 4 addresses, and another client for one
    statuses = [
        (
            await client.post(
                RESET,
                json={"email": f"victim{n}@example.com"},
                headers={"X-Real-IP": "203.0.113.5"},
            )
        ).status
        for n in range(4)
    ]
    other = await client.post(
        RESET, json={"email": "victim9@example.com"}, headers={"X-Real-IP": "203.0.113.6"}
    )

    # then the first client's fourth is refused, and the other client is not
    assert statuses == [202, 202, 202, 429]
    assert other.status == 202


async def test_a_reset_request_is_answered_before_its_work_is_done(
    api: Api, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an account, and the reset link's insert held until the test lets it go
    await api.register("later@example.com")
    store = api.client.server.app[USERS].store
    gate = asyncio.Event()
    insert = store.insert_reset_token

    async def held(*args: Any) -> None:
        await gate.wait()
        await insert(*args)

    monkeypatch.setattr(store, "insert_reset_token", held)

    # when a reset is asked for (a handler that waited for the work would never answer)
    answer = await asyncio.wait_for(api.client.post(RESET, json={"email": "later@example.com"}), 30)

    # then the answer came while the work was still held, and the mail follows once it goes on
    assert answer.status == 202
    assert await db.reset_tokens.count_documents({}) == 0
    assert await db.events.count_documents({"type": "user.password_reset_requested"}) == 0
    gate.set()
    await eventually(lambda: db.events.count_documents({"type": "user.password_reset_requested"}))
    await eventually(lambda: _no_request_left(db))


async def _no_request_left(db: Any) -> bool:
    return await db.reset_requests.count_documents({}) == 0


async def test_a_reset_whose_work_failed_is_carried_out_by_the_retry_loop(
    api: Api, db: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # given an account, and a database that fails the first reset link's insert
    await api.register("retry@example.com")
    users = api.client.server.app[USERS]
    insert = users.store.insert_reset_token

    async def fails_once(*args: Any) -> None:
        monkeypatch.setattr(users.store, "insert_reset_token", insert)
        raise ConnectionError("the database went away")

    monkeypatch.setattr(users.store, "insert_reset_token", fails_once)

    # when a reset is asked for, its work fails after the answer, and the retry loop runs later
    with caplog.at_level(logging.ERROR, logger="users.resets"):
        answer = await api.client.post(RESET, json={"email": "retry@example.com"})
        await eventually(lambda: _logged(caplog))
    assert answer.status == 202
    assert await db.reset_requests.count_documents({}) == 1
    later = clock.now() + resets.RETRY_AFTER + timedelta(seconds=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    await resets.retry_stale(users)
    await resets.retry_stale(users)

    # then the link is mailed once, and the request is done
    assert await db.events.count_documents({"type": "user.password_reset_requested"}) == 1
    assert await db.reset_tokens.count_documents({}) == 1
    assert await db.reset_requests.count_documents({}) == 0


async def _logged(caplog: pytest.LogCaptureFixture) -> bool:
    return any("retry loop" in record.getMessage() for record in caplog.records)


async def test_a_reset_request_carried_out_twice_mails_one_link(api: Api, db: Any) -> None:
    # given a recorded request for an account
    await api.register("twice@example.com")
    users = api.client.server.app[USERS]
    request_id, email = await resets.ask(users, "Twice@Example.com", "198.51.100.1")

    # when two instances carry it out (one crashed before it could delete the record)
    await resets.carry_out(users, request_id, email)
    await resets.carry_out(users, request_id, email)

    # then one link was stored and one mail asked for
    assert await db.reset_tokens.count_documents({}) == 1
    assert await db.events.count_documents({"type": "user.password_reset_requested"}) == 1
