"""What notifications keeps: deliveries, recipients' preferences, suppressions, campaigns."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class Topic(StrEnum):
    """What a message is about, which decides who may turn it off."""

    TRANSACTIONAL = "transactional"  # accounts, orders, payments: email always on
    SHIPPING = "shipping"  # shipped, delivered
    PROMOTIONS = "promotions"  # campaigns: opt-in
    STAFF = "staff"  # to the shop's own people


class Status(StrEnum):
    PENDING = "pending"  # due at `due_at`
    SENDING = "sending"  # claimed by an instance, being handed over
    SENT = "sent"
    FAILED = "failed"  # refused for good (permanent), never retried
    DEAD = "dead"  # transient failures past the attempts: the dead-letter list
    SUPPRESSED = "suppressed"  # the recipient's channel is suppressed (a permanent failure before)
    OPTED_OUT = "opted_out"  # the recipient turned the topic off meanwhile
    RATE_LIMITED = "rate_limited"  # past SMS_PER_HOUR for that phone


FINAL = frozenset(Status) - {Status.PENDING, Status.SENDING}
RETRYABLE_BY_STAFF = frozenset({Status.DEAD, Status.FAILED})


# What each topic sends on each channel unless the recipient says otherwise; transactional
# email cannot be turned off, promotions are opt-in, SMS only to a phone the recipient gave.
DEFAULT_CHANNELS: dict[Topic, dict[Channel, bool]] = {
    Topic.TRANSACTIONAL: {Channel.EMAIL: True, Channel.SMS: False},
    Topic.SHIPPING: {Channel.EMAIL: True, Channel.SMS: True},
    Topic.PROMOTIONS: {Channel.EMAIL: False, Channel.SMS: False},
}
FIXED = {(Topic.TRANSACTIONAL, Channel.EMAIL)}


def address_hash(address: str) -> str:
    """The key a recipient is known by in indexes and suppressions, whatever its letter case."""
    return hashlib.sha256(address.strip().casefold().encode()).hexdigest()[:32]


def mask(address: str) -> str:
    """An address as logs and staff see it: `j***@example.com`, `+44*******123`."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(address) <= 5:
        return "*" * len(address)
    return address[:3] + "*" * (len(address) - 6) + address[-3:]


@dataclass(frozen=True, slots=True)
class Preferences:
    """A signed-in customer's choices; what they never set is DEFAULT_CHANNELS."""

    user_id: str
    channels: dict[Topic, dict[Channel, bool]]
    phone: str | None = None
    locale: str | None = None

    def wants(self, topic: Topic, channel: Channel) -> bool:
        if topic is Topic.STAFF or (topic, channel) in FIXED:
            return True
        if channel is Channel.SMS and not self.phone:
            return False
        return self.channels.get(topic, {}).get(channel, DEFAULT_CHANNELS[topic][channel])

    @classmethod
    def default(cls, user_id: str) -> Preferences:
        return cls(user_id, {})


@dataclass(frozen=True, slots=True)
class Recipient:
    """What users told us of an account: where its email goes, whom to greet."""

    user_id: str
    email: str
    name: str
    customer: bool = True


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to one recipient on one channel, recorded before it is attempted."""

    id: str
    template: str
    topic: Topic
    channel: Channel
    to: str
    status: Status
    due_at: datetime
    created_at: datetime
    attempts: int = 0
    round: int = 0
    user_id: str | None = None
    locale: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    campaign_id: str | None = None
    link_id: str | None = None  # users' link (verification, reset) to read just before sending
    sent_at: datetime | None = None
    error: str | None = None

    @property
    def claim_id(self) -> str:
        """The next attempt's claim: whoever inserts it first makes that attempt."""
        return f"{self.id}#{self.round}.{self.attempts + 1}"


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    name: str
    subject: str
    html: str
    text: str
    created_by: str
    created_at: datetime
    rate: float | None = None
    started_at: datetime | None = None
    planned: bool = False
