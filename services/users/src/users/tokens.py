"""Signing in: login, refresh rotation, logout and the client-credentials grant for services."""

from __future__ import annotations

import hmac
import time

from users.accounts import normalise_email
from users.deps import Collaborators
from users.errors import AccountDisabled, InvalidClient, InvalidCredentials, InvalidRefreshToken
from users.model import TokenPair, User
from users.sessions import Issued


def _pair(users: Collaborators, user: User, issued: Issued, read_at: float) -> TokenPair:
    """The tokens for `user` as read at `read_at`, which the access token names as its `iat`.

    Not the signing time: a revocation (a disable, a role removed) refuses every token issued up
    to its moment, and one landing between the read and the signature must cover this token too,
    which carries what was read before it.
    """
    settings = users.settings
    access = users.keys.sign(
        issued_at=read_at,
        subject=user.id,
        roles=user.roles,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=settings.access_token_ttl,
        extra={"sid": issued.family_id},
    )
    return TokenPair(access, issued.refresh_token, settings.access_token_ttl)


async def login(
    users: Collaborators, email: str, password: str, *, client: str, user_agent: str | None
) -> TokenPair:
    email = normalise_email(email)
    attempt = await users.throttle.attempt(email, client)
    read_at = time.time()
    user = await users.store.by_email(email)
    # An unknown email still costs one bcrypt verification, so timing does not tell accounts apart.
    if (
        not await users.hasher.verify(password, user.password_hash if user else None)
        or user is None
    ):
        raise InvalidCredentials()
    if user.disabled:
        raise AccountDisabled("this account is disabled")
    await users.throttle.succeeded(email, client, attempt)
    issued = await users.families.start(user.id, user.credentials_version, user_agent, client)
    return _pair(users, user, issued, read_at)


async def refresh(users: Collaborators, refresh_token: str) -> TokenPair:
    issued = await users.families.rotate(refresh_token)
    if await users.history.session_revoked(issued.family_id):
        # Its revocation was broadcast but the request died before the family recorded it:
        # finish it here, or the session would outlive the broadcast.
        await users.families.revoke(issued.family_id, reason="revoked")
        raise InvalidRefreshToken()
    read_at = time.time()
    # Past the cache: the roles and the disabled flag as they are now, not as cached 30 s ago.
    user = await users.store.fresh(issued.user_id)
    if user is None or user.disabled:
        await users.families.revoke(issued.family_id, reason="disabled")
        raise InvalidRefreshToken()
    return _pair(users, user, issued, read_at)


async def logout(users: Collaborators, refresh_token: str) -> None:
    """Whoever holds a refresh token may end its session (and only that one)."""
    family_id, _ = await users.families.owner(refresh_token)
    await users.families.revoke(family_id, reason="logout")


def service_subject(client_id: str) -> str:
    """The `sub` of the service tokens issued to `client_id`."""
    return f"service:{client_id}"


def client_credentials(
    users: Collaborators, client_id: str, client_secret: str
) -> dict[str, object]:
    expected = users.settings.clients().get(client_id)
    # compare_digest against a dummy keeps timing flat for unknown client ids.
    if not hmac.compare_digest((expected or "\0").encode(), client_secret.encode()) or not expected:
        raise InvalidClient()
    settings = users.settings
    token = users.keys.sign(
        subject=service_subject(client_id),
        roles=("service",),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=settings.service_token_ttl,
    )
    return {"access_token": token, "token_type": "Bearer", "expires_in": settings.service_token_ttl}
