"""The situations the users service answers with, as the kit's problem types."""

from __future__ import annotations

from shopkit.problems import (
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    Unauthorized,
    ValidationFailed,
)


class EmailAlreadyRegistered(Conflict):
    slug, title = "email-already-registered", "Email already registered"


class InvalidCredentials(Unauthorized):
    slug, title = "invalid-credentials", "Invalid email or password"


class AccountDisabled(Forbidden):
    slug, title = "account-disabled", "Account disabled"


class InvalidRefreshToken(Unauthorized):
    slug, title = "invalid-refresh-token", "Invalid refresh token"


class RefreshTokenReused(InvalidRefreshToken):
    """A spent refresh token came back: stolen, or raced by its owner. Its whole family ends."""

    def __init__(self) -> None:
        super().__init__("refresh token reused; every session of this login ended")


class InvalidToken(ValidationFailed):
    slug, title = "invalid-token", "Invalid or expired token"


class UserNotFound(NotFound):
    slug, title = "user-not-found", "User not found"


class AddressNotFound(NotFound):
    slug, title = "address-not-found", "Address not found"


class SessionNotFound(NotFound):
    slug, title = "session-not-found", "Session not found"


class TooManyAddresses(Conflict):
    slug, title = "too-many-addresses", "Too many addresses"


class InvalidClient(Unauthorized):
    slug, title = "invalid-client", "Invalid client credentials"


class CannotChangeOwnAccess(Conflict):
    slug, title = "cannot-change-own-access", "Cannot change your own access"


class ClientNotAllowed(Forbidden):
    slug, title = "client-not-allowed", "Client not allowed"


class LinkNotFound(NotFound):
    slug, title = "link-not-found", "Link not found"


class LinkExpired(Gone):
    slug, title = "link-expired", "Link expired or used"
