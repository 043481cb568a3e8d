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
    """Mail `token` to `email` (the login, or the address the account asked to move to)."""

    user_id: str
    email: str
    token: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class PasswordResetRequested(Payload):
    """Mail the reset `token` to `email`."""

    user_id: str
    email: str
    token: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class PasswordChanged(Payload):
    """Tell the owner at `email` that the password changed (by a change or a reset)."""

    user_id: str
    email: str
