"""The running service (routes, background jobs, staff paths) reads no growing collection whole.

The customer's hot paths are checked strictly, without background jobs, in test_queries.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError
from users_support import ADMIN, Api, Client

from shopkit import broker
from shopkit.testing.explain import KIT_READ_WHOLE, ExplainedMongo

READ_WHOLE = {
    **KIT_READ_WHOLE,
    "registrations": "registrations under way, each deleted once its events are in the stream",
    "reset_requests": "password reset requests under way, each deleted once carried out",
}


async def published(nats: NatsClient, service: str, event_type: str, email: str) -> dict[str, Any]:
    """The last event of a type the relay published for `email` (read from JetStream, not Mongo,
    so the check sees only the service's own queries)."""
    js = nats.jetstream()
    for _ in range(100):
        try:
            message = await js.get_last_msg(
                broker.stream_name(service), broker.subject(service, event_type)
            )
            event: dict[str, Any] = json.loads(message.data or b"{}")
            if event["data"].get("email") == email:
                return event
        except NotFoundError:
            pass  # not published yet
        await asyncio.sleep(0.1)
    raise AssertionError(f"{event_type} for {email} was never published")


async def test_the_running_service_serves_a_customer_and_an_admin_from_indexes(
    start_users: Callable[..., Awaitable[Client]],
    explained_mongo: ExplainedMongo,
    database_name: str,
    nats_client: NatsClient,
) -> None:
    service = "users" + database_name
    client = await start_users(MONGO_URL=explained_mongo.url, SERVICE_NAME=service)

    call = Api(client).call

    # A customer registers, verifies the email, signs in and uses the account.
    email = "journey@example.com"
    await call(
        "POST",
        "/api/v1/auth/register",
        201,
        json={"email": email, "password": "pw-12345678", "name": "Jo"},
    )
    verification = await published(nats_client, service, "user.email_verification_requested", email)
    token = await Api(client).link_token(verification["data"])
    await call("POST", "/api/v1/auth/verify-email", 200, json={"token": token})
    await call(
        "POST", "/api/v1/auth/login", 401, json={"email": email, "password": "wrong-password"}
    )
    pair = await call(
        "POST", "/api/v1/auth/login", 200, json={"email": email, "password": "pw-12345678"}
    )
    me = {"Authorization": f"Bearer {pair['access_token']}"}
    user_id = (await call("GET", "/api/v1/users/me", 200, headers=me))["id"]
    await call("PATCH", "/api/v1/users/me", 200, headers=me, json={"name": "Joan"})
    address = {
        "recipient": "Joan",
        "line1": "1 Main St",
        "city": "Lyon",
        "postal_code": "69001",
        "country": "FR",
    }
    created = await call("POST", "/api/v1/users/me/addresses", 201, headers=me, json=address)
    await call("GET", "/api/v1/users/me/addresses", 200, headers=me)
    path = f"/api/v1/users/me/addresses/{created['id']}"
    await call("GET", path, 200, headers=me)
    await call("PATCH", path, 200, headers=me, json={"default_shipping": True})
    await call("DELETE", path, 204, headers=me)
    pair = await call(
        "POST", "/api/v1/auth/refresh", 200, json={"refresh_token": pair["refresh_token"]}
    )
    await call("GET", "/api/v1/users/me/sessions", 200, headers=me)
    await call(
        "POST",
        "/api/v1/users/me/password",
        204,
        headers=me,
        json={"current_password": "pw-12345678", "new_password": "pw-87654321"},
    )
    await call("POST", "/api/v1/auth/password-reset", 202, json={"email": email})
    reset = await published(nats_client, service, "user.password_reset_requested", email)
    body = {"token": await Api(client).link_token(reset["data"]), "new_password": "pw-11223344"}
    await call("POST", "/api/v1/auth/password-reset/confirm", 204, json=body)
    pair = await call(
        "POST", "/api/v1/auth/login", 200, json={"email": email, "password": "pw-11223344"}
    )
    await call("POST", "/api/v1/auth/logout", 204, json={"refresh_token": pair["refresh_token"]})

    # An admin looks the customer up and changes their roles.
    admin_pair = await call("POST", "/api/v1/auth/login", 200, json=ADMIN)
    admin = {"Authorization": f"Bearer {admin_pair['access_token']}"}
    await call("GET", f"/api/v1/users/{user_id}", 200, headers=admin)
    await call("PATCH", f"/api/v1/users/{user_id}", 200, headers=admin, json={"roles": ["staff"]})
    staff = await call("GET", "/api/v1/users?role=staff", 200, headers=admin)
    assert [user["id"] for user in staff["items"]] == [user_id]

    scans = explained_mongo.unexpected(database_name, READ_WHOLE)
    assert scans == [], "\n".join(map(str, scans))
