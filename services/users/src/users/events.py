"""The events users publishes on the bus (subject `shop.users.<type>`), and each one's payload."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shopkit.events import Payload
from shopkit.revocations import ACCESS_REVOKED, SESSION_REVOKED, AccessRevoked, SessionRevoked

__all__ = [
    "ACCESS_REVOKED",
    "SESSION_REVOKED",
    "AccessRevoked",
    "EmailChanged",
    "EmailVerificationRequested",
    "PasswordChanged",
    "PasswordResetRequested",
    "SessionRevoked",
    "UserEvent",
    "UserRegistered",
]


class UserEvent(StrEnum):
    """What happened to an account; appended to its stream `user-<id>`, then relayed."""

    REGISTERED = "user.registered"
    EMAIL_VERIFICATION_REQUESTED = "user.email_verification_requested"
    PASSWORD_RESET_REQUESTED = "user.password_reset_requested"
    PASSWORD_CHANGED = "user.password_changed"
    EMAIL_CHANGED = "user.email_changed"


# users also publishes `access.revoked` and `session.revoked` (ACCESS_REVOKED, SESSION_REVOKED),
# through the same streams. They are defined in the kit (`shopkit.revocations`) and only re-exported
# here: their consumer is the token verifier every service runs from the kit, and the kit never
# imports a service, so the contract has to live on the consumer's side of that line.


@dataclass(frozen=True, slots=True)
class UserRegistered(Payload):
    user_id: str
    email: str
    name: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EmailVerificationRequested(Payload):
    """Mail the verification link `link_id` to `email` (the login, or the address the account asked
    to move to). The token is not here: notifications reads it from users
    (`GET /internal/users/{user_id}/links/{link_id}`) when it mails the link."""

    user_id: str
    email: str
    link_id: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class PasswordResetRequested(Payload):
    """Mail the reset link `link_id` to `email`; its token is read from users, as a verification's."""

    user_id: str
    email: str
    link_id: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class PasswordChanged(Payload):
    """Tell the owner at `email` that the password changed (by a change or a reset)."""

    user_id: str
    email: str


@dataclass(frozen=True, slots=True)
class EmailChanged(Payload):
    """The login moved from `old_email` to `new_email` (verified): tell the old address."""

    user_id: str
    old_email: str
    new_email: str
