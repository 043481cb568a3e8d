"""Login: one answer for unknown emails and wrong passwords, throttling that cannot lock a user out."""

from __future__ import annotations

import asyncio

from users_support import Api, Client


async def _login(
    client: Client, email: str, password: str, ip: str = "198.51.100.7"
) -> tuple[int, dict]:
    response = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, headers={"X-Real-IP": ip}
    )
    return response.status, dict(await response.json()) if response.status != 204 else {}


async def test_unknown_email_and_wrong_password_get_the_same_answer(api: Api) -> None:
    await api.register("known@example.com")

    unknown_status, unknown = await _login(api.client, "nobody@example.com", "correct horse")
    wrong_status, wrong = await _login(api.client, "known@example.com", "wrong horse")

    assert unknown_status == wrong_status == 401
    for body in (unknown, wrong):
        body.pop("request_id")
    assert unknown == wrong


async def test_repeated_failures_are_throttled_with_retry_after(api: Api) -> None:
    await api.register("target@example.com")
    for _ in range(5):
        status, _ = await _login(api.client, "target@example.com", "guess-guess", ip="203.0.113.9")
        assert status == 401

    response = await api.client.post(
        "/api/v1/auth/login",
        json={"email": "target@example.com", "password": "correct horse"},
        headers={"X-Real-IP": "203.0.113.9"},
    )

    assert response.status == 429
    assert int(response.headers["Retry-After"]) > 0
    assert response.content_type == "application/problem+json"


async def test_an_attacker_elsewhere_does_not_lock_the_real_user_out(api: Api) -> None:
    # given an attacker who exhausted the attempts for this account from their address
    await api.register("victim@example.com")
    attacks = [
        (await _login(api.client, "victim@example.com", "guess-guess", ip="203.0.113.66"))[0]
        for _ in range(6)
    ]
    # (the attacker is throttled: else this test would pass with no throttle at all)
    assert attacks == [401] * 5 + [429]

    # when the real user logs in from their own address
    status, body = await _login(api.client, "victim@example.com", "correct horse", ip="192.0.2.10")

    # then they get in
    assert status == 200
    assert body["token_type"] == "Bearer"


async def test_a_disabled_account_cannot_log_in(api: Api) -> None:
    user = await api.register("gone@example.com")
    admin = await api.admin()
    await api.client.patch(f"/api/v1/users/{user['id']}", json={"disabled": True}, headers=admin)

    status, body = await _login(api.client, "gone@example.com", "correct horse")

    assert status == 403
    assert body["type"].endswith("account-disabled")


async def test_parallel_guesses_cannot_slip_past_the_limit(api: Api) -> None:
    await api.register("burst@example.com")

    responses = await asyncio.gather(
        *(
            api.client.post(
                "/api/v1/auth/login",
                json={"email": "burst@example.com", "password": f"guess {n}"},
                headers={"X-Real-IP": "203.0.113.77"},
            )
            for n in range(20)
        )
    )

    statuses = [r.status for r in responses]
    assert statuses.count(401) <= 5
    assert statuses.count(429) >= 15


async def test_unencodable_or_pathological_bodies_are_a_400(client: Client) -> None:
    bodies = [
        b'{"email": "a@b.co", "password": "\\ud800\\ud800\\ud800"}',
        b'{"email": "a@b.co", "password": NaN}',
        b"[" * 100_000 + b"]" * 100_000,
    ]
    for body in bodies:
        response = await client.post(
            "/api/v1/auth/login", data=body, headers={"Content-Type": "application/json"}
        )
        assert response.status == 400, body[:40]
        assert response.content_type == "application/problem+json"
    basic = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic é=="},
    )
    assert basic.status == 401
