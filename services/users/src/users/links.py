"""Single-use links (email verification, password reset): tokens derived from a link id, and reading one.

An event names a link by its id only, never its token: the token is an HMAC of the id under the
pepper, so only users can derive it, and it hands it to notifications alone, to mail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shopkit import clock
from users.deps import Collaborators
from users.errors import LinkExpired, LinkNotFound
from users.model import ResetLink, VerificationLink


class Purpose(StrEnum):
    """What a link does; part of what its token derives from, so one id makes a token per purpose."""

    EMAIL_VERIFICATION = "email-verification"
    PASSWORD_RESET = "password-reset"


def token(pepper: str, purpose: Purpose, link_id: str) -> str:
    """The link's token: HMAC-SHA256 of `<purpose>:<link_id>` under the pepper, url-safe base64."""
    digest = hmac.new(pepper.encode(), f"{purpose}:{link_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_hash(token: str) -> str:
    """What the link is stored (and its use recorded) under: the token itself is never stored."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Link:
    purpose: Purpose
    token: str
    expires_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "purpose": str(self.purpose),
            "token": self.token,
            "expires_at": clock.rfc3339(self.expires_at),
        }


async def read(users: Collaborators, user_id: str, link_id: str) -> Link:
    """The live link `link_id` of `user_id`, with its token: for notifications to mail it.

    Each purpose's token is derived and its record read by the token's hash (an `_id` read).
    Another user's link is not found, before anything about it is told. A link expired, used, or
    (for a verification) no longer able to verify anything (the account moved on to another
    address, or verified this one) is gone: mailing it would be no use.
    """
    pepper = users.settings.password_pepper.value
    for purpose in Purpose:
        candidate = token(pepper, purpose, link_id)
        hashed = token_hash(candidate)
        stored: VerificationLink | ResetLink | None = (
            await users.store.verification(hashed)
            if purpose is Purpose.EMAIL_VERIFICATION
            else await users.store.reset_token(hashed)
        )
        if stored is not None and stored.user_id == user_id:
            break
    else:
        raise LinkNotFound(f"no link {link_id} for user {user_id}")
    if stored.expires_at <= clock.now():
        raise LinkExpired("the link has expired")
    if await users.store.token_used(hashed):
        raise LinkExpired("the link was used")
    if isinstance(stored, VerificationLink):
        user = await users.store.fresh(user_id)
        if user is None or user.awaited_email != stored.email:
            raise LinkExpired("the account no longer waits for this address to be verified")
    return Link(purpose, candidate, stored.expires_at)
