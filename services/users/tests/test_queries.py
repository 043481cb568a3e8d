"""Every hot path of the users service reads through an index, as PostgreSQL itself plans it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from users_support import HOME

from shopkit import mongo
from shopkit.events import EventStore
from shopkit.settings import load
from shopkit.testing.explain import ExplainedMongo
from users import accounts, addresses, links, resets, tokens
from users.deps import Collaborators, open_collaborators
from users.settings import UsersSettings
from users.signing import SigningKeys


@pytest.fixture
async def explained_users(
    explained_mongo: ExplainedMongo, database_name: str, users_env: dict[str, str]
) -> AsyncIterator[Collaborators]:
    """The use cases on a database whose every full scan is reported (no background jobs)."""
    client = mongo.client(explained_mongo.url)
    settings = load(UsersSettings, users_env)
    try:
        yield await open_collaborators(
            client[database_name], settings, SigningKeys(settings.signing_keys.value)
        )
    finally:
        await client.close()


async def _latest_event(users: Collaborators, user_id: str) -> dict[str, Any]:
    """The newest event of the account's stream (read slot by slot: `_id` reads)."""
    return (await EventStore(users.store.users.database).load(f"user-{user_id}"))[-1].data


async def test_the_hot_paths_read_only_through_indexes(
    explained_users: Collaborators, explained_mongo: ExplainedMongo, database_name: str
) -> None:
    users = explained_users
    client = "198.51.100.4"

    # given an account that registered, verified its email and logged in (once wrongly)
    user = await accounts.register(
        users, email="hot@example.com", name="Ada", password="pw horse 1"
    )
    verification = await _latest_event(users, user.id)
    link = await links.read(users, user.id, verification["link_id"])
    await accounts.verify_email(users, link.token)
    with pytest.raises(Exception, match="Invalid"):
        await tokens.login(users, "hot@example.com", "wrong horse", client=client, user_agent=None)
    pair = await tokens.login(users, "hot@example.com", "pw horse 1", client=client, user_agent="t")

    # when it uses the service: refreshes, edits, addresses, sessions, password and reset, logout
    pair = await tokens.refresh(users, pair.refresh_token)
    me = await accounts.get(users, user.id)
    me = await accounts.update_profile(users, me, {"name": "Grace"})
    home, me = await addresses.add(users, me, dict(HOME))
    office, me = await addresses.add(users, me, {**HOME, "line1": "1 Office Rd"})
    await addresses.update(users, me, office.id, {"city": "Bath", "default_billing": True})
    await users.store.addresses_of(user.id)
    await addresses.delete(users, await accounts.get(users, user.id), home.id)
    session_id = pair.refresh_token.partition(".")[0]
    await users.store.active_sessions(user.id)
    await accounts.change_password(users, me, "pw horse 1", "pw horse 2", session_id)
    await resets.carry_out(users, *await resets.ask(users, "hot@example.com", client))
    reset = await _latest_event(users, user.id)
    link = await links.read(users, user.id, reset["link_id"])
    await accounts.confirm_password_reset(users, link.token, "pw horse 3")
    pair = await tokens.login(users, "hot@example.com", "pw horse 3", client=client, user_agent="t")
    await tokens.logout(users, pair.refresh_token)

    # then PostgreSQL read no collection whole: every query was served by an index
    assert explained_mongo.scans(database_name) == []
