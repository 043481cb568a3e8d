"""Signed one-click unsubscribe links: long-lived, no state, refused when forged.

A link names the user and the topic, and carries an HMAC of both under UNSUBSCRIBE_SECRET: anyone
holding the mail may unsubscribe its recipient (RFC 8058 asks exactly that), nobody can make a
link for someone else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from notifications.errors import InvalidUnsubscribeLink
from notifications.model import Topic

SIGNATURE_BYTES = 16


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> bytes:
    digest = hmac.new(secret.encode(), f"unsubscribe:{payload}".encode(), hashlib.sha256)
    return digest.digest()[:SIGNATURE_BYTES]


def sign(secret: str, user_id: str, topic: Topic) -> str:
    payload = f"{user_id}:{topic.value}"
    return f"{_b64(payload.encode())}.{_b64(_signature(secret, payload))}"


def verify(secret: str, token: str) -> tuple[str, Topic]:
    """The user and topic a link unsubscribes; InvalidUnsubscribeLink when it was not ours."""
    encoded, _, signature = token.partition(".")
    try:
        payload = _unb64(encoded).decode()
        given = _unb64(signature)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidUnsubscribeLink("the link is malformed") from None
    if not hmac.compare_digest(given, _signature(secret, payload)):
        raise InvalidUnsubscribeLink("the link's signature does not match")
    user_id, _, topic = payload.rpartition(":")
    try:
        return user_id, Topic(topic)
    except ValueError:
        raise InvalidUnsubscribeLink("the link names no topic") from None
