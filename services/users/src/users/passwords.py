"""Password hashing: bcrypt over an HMAC-SHA256 pre-hash, so long passwords neither fail nor truncate."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import unicodedata

import bcrypt

MIN_LENGTH = 8
MAX_LENGTH = 256


def normalise(password: str) -> str:
    # NFC so that the same visible password typed on two keyboards hashes the same.
    return unicodedata.normalize("NFC", password)


class Hasher:
    def __init__(self, pepper: str, cost: int) -> None:
        self._pepper = pepper.encode()
        self._cost = cost
        # Compared against for unknown emails, so both answers take a bcrypt verification.
        self._decoy = bcrypt.hashpw(b"decoy", bcrypt.gensalt(cost))

    def _prehash(self, password: str) -> bytes:
        digest = hmac.new(self._pepper, normalise(password).encode(), hashlib.sha256).digest()
        # 44 base64 bytes: under bcrypt's 72-byte limit and free of NUL bytes.
        return base64.b64encode(digest)

    async def hash(self, password: str) -> str:
        prehashed = self._prehash(password)
        hashed = await asyncio.to_thread(bcrypt.hashpw, prehashed, bcrypt.gensalt(self._cost))
        return hashed.decode()

    async def verify(self, password: str, hashed: str | None) -> bool:
        target = hashed.encode() if hashed else self._decoy
        matched = await asyncio.to_thread(bcrypt.checkpw, self._prehash(password), target)
        return matched and hashed is not None
