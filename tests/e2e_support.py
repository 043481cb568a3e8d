"""What the end-to-end tests share: reading an answer, and the local admin's credentials."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from shopkit.settings import read_env_file
from shopkit.testing.peers import Peer, free_port

ROOT = Path(__file__).resolve().parent.parent
# orders' client secret at users (conftest gives it to both): its service token for /internal/.
ORDERS_CLIENT_SECRET = "e2e-orders-" + uuid.uuid4().hex
NOTIFICATIONS_CLIENT_SECRET = "e2e-notifications-" + uuid.uuid4().hex
# The secret payments verifies Stripe's webhooks with (conftest); tests sign theirs with it.
STRIPE_WEBHOOK_SECRET = "whsec_e2e_" + uuid.uuid4().hex


async def expect_json(response: aiohttp.ClientResponse, status: int) -> Any:
    """The answer's JSON body, once its status is the one expected (else its text, as the failure)."""
    assert response.status == status, await response.text()
    return await response.json()


async def admin_headers(gateway: str, http: aiohttp.ClientSession) -> dict[str, str]:
    """The seeded admin of `.env.example`, signed in: the Authorization header."""
    env = read_env_file(ROOT / ".env.example")
    credentials = {"email": env["ADMIN_EMAIL"], "password": env["ADMIN_PASSWORD"]}
    async with http.post(f"{gateway}/api/v1/auth/login", json=credentials) as r:
        return {"Authorization": f"Bearer {(await expect_json(r, 200))['access_token']}"}


def run_instances(
    name: str,
    env: Mapping[str, str],
    logs: Path,
    database_names: set[str],
    count: int,
    argv: Sequence[str] | None = None,
    databases: dict[str, str] | None = None,
) -> Iterator[list[str]]:
    """`count` processes of one service (its console script unless `argv`) sharing one fresh
    database (named in `databases` under the service's name, if given)."""
    database = "e2e_" + uuid.uuid4().hex[:12]
    database_names.add(database)
    if databases is not None:
        databases[name] = database
    env = {
        **read_env_file(ROOT / ".env.example"),
        **env,
        "SERVICE_NAME": name,
        "MONGO_DATABASE": database,
        # A line per request and event, each with its trace id: tests/test_logs_pipeline.py follows
        # one checkout's trace through them.
        "LOG_LEVEL": "INFO",
        "LOG_REQUESTS": "true",
    }
    started: list[Peer] = []
    try:
        for index in range(1, count + 1):
            port = free_port()
            peer = Peer(
                name=f"{name}-{index}",
                argv=list(argv or [str(ROOT / ".venv" / "bin" / name)]),
                log_path=logs / f"{name}-{index}.log",
                env={**env, "PORT": str(port)},
                port=port,
                ready_url=f"http://127.0.0.1:{port}/readyz",
            )
            # One at a time: instances bootstrap shared state (the admin account, indexes).
            started.append(peer.start())
        yield [f"127.0.0.1:{peer.port}" for peer in started]
    finally:
        for peer in reversed(started):
            peer.stop()
