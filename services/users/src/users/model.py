"""The users domain's values: accounts, roles, addresses and sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shopkit.clock import rfc3339


class Role(StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    password_hash: str
    roles: tuple[str, ...]
    email_verified: bool
    disabled: bool
    created_at: datetime
    updated_at: datetime
    phone: str | None = None
    pending_email: str | None = None
    default_shipping_address_id: str | None = None
    default_billing_address_id: str | None = None
    # Changes with every password: sessions opened under another version are dead.
    credentials_version: str = ""

    @property
    def awaited_email(self) -> str | None:
        """The address a verification link can verify now: the latest one the account asked to
        move to, else its login until verified; a link to any other address is dead."""
        if self.pending_email:
            return self.pending_email
        return None if self.email_verified else self.email

    def public(self) -> dict[str, Any]:
        """The account as its owner and admins see it (never the password hash)."""
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "phone": self.phone,
            "roles": list(self.roles),
            "email_verified": self.email_verified,
            "pending_email": self.pending_email,
            "disabled": self.disabled,
            "default_shipping_address_id": self.default_shipping_address_id,
            "default_billing_address_id": self.default_billing_address_id,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class Address:
    id: str
    user_id: str
    recipient: str
    line1: str
    city: str
    postal_code: str
    country: str
    created_at: datetime
    line2: str | None = None
    region: str | None = None
    phone: str | None = None
    label: str | None = None

    def public(self, user: User) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "recipient": self.recipient,
            "line1": self.line1,
            "line2": self.line2,
            "city": self.city,
            "region": self.region,
            "postal_code": self.postal_code,
            "country": self.country,
            "phone": self.phone,
            "is_default_shipping": user.default_shipping_address_id == self.id,
            "is_default_billing": user.default_billing_address_id == self.id,
            "created_at": rfc3339(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Session:
    """One refresh-token family: a login on one device, until it is revoked or expires."""

    id: str
    user_id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None = None
    ip: str | None = None
    revoked_at: datetime | None = None

    def public(self, current_session: str | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": rfc3339(self.created_at),
            "last_used_at": rfc3339(self.last_used_at),
            "expires_at": rfc3339(self.expires_at),
            "user_agent": self.user_agent,
            "ip": self.ip,
            "current": self.id == current_session,
        }


@dataclass(frozen=True, slots=True)
class VerificationLink:
    """A stored email-verification link: whose, for which email, until when."""

    user_id: str
    email: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ResetLink:
    """A stored password-reset link: whose, until when."""

    user_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PendingRegistration:
    """A registration begun and not done: its account's events, when it began, whether the
    account was inserted."""

    user_id: str
    events: list[dict[str, Any]]
    at: datetime
    has_account: bool


@dataclass(frozen=True, slots=True)
class PendingResetRequest:
    """A password reset request answered and not yet carried out."""

    id: str
    email: str
    at: datetime


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def public(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
