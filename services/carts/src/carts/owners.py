"""Whose cart a request addresses: a signed-in user's own, or a guest's by its token.

A guest cart's token is 32 random bytes; the cart's id is derived from it by SHA-256, so the id
(which staff and orders see) tells nothing of the token, and no table maps one to the other. A
user's cart is named in the user's record (`CartStore.claim_user_cart`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from collections import OrderedDict

from carts.errors import CartNotFound
from shopkit.problems import TooManyRequests

_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


def new_guest_token() -> str:
    return secrets.token_urlsafe(32)


def guest_cart_id(token: str) -> str:
    """The id of the guest cart `token` opens; 404 for what is no token of ours."""
    if not _TOKEN.fullmatch(token):
        raise CartNotFound("no cart has this token")
    return "g" + hashlib.sha256(token.encode()).hexdigest()[:31]


def new_user_cart_id() -> str:
    return "u" + uuid.uuid4().hex[:31]


class GuestQuota:
    """At most `per_minute` new guest carts per client address in any minute, in this process (the
    gateway's instances each count their own): a bot cannot fill the database with empty carts."""

    def __init__(self, per_minute: int, clients: int = 100_000) -> None:
        self._per_minute = per_minute
        self._clients = clients
        self._started: OrderedDict[str, list[float]] = OrderedDict()

    def take(self, client: str) -> None:
        now = time.monotonic()
        recent = [moment for moment in self._started.pop(client, []) if now - moment < 60]
        if len(recent) >= self._per_minute:
            self._started[client] = recent
            raise TooManyRequests(
                int(60 - (now - recent[0])) + 1, "too many new carts from this address; retry later"
            )
        self._started[client] = [*recent, now]
        while len(self._started) > self._clients:
            self._started.popitem(last=False)
