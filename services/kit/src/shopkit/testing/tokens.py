"""Access tokens for tests of services other than users: an ES256 key, its JWKS, and a minting helper."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from shopkit.auth import KeySource, StaticKeys
from shopkit.headers import AUTHORIZATION

__all__ = ["TokenFactory"]


class TokenFactory:
    """Signs tokens the way the users service does, so a service under test verifies real JWTs."""

    def __init__(self, issuer: str = "https://shop.test", audience: str = "shop") -> None:
        self.issuer, self.audience = issuer, audience
        self._key = ECKey.generate_key("P-256", parameters={"kid": "test-" + uuid.uuid4().hex[:6]})
        self.keyset = KeySet([ECKey.import_key(self._key.as_dict(private=False))])

    def keys(self) -> Callable[[web.Application], KeySource]:
        """What `build_app(keys=...)` (or a service's create_app) takes to trust these tokens."""
        return lambda _app: StaticKeys(lambda: self.keyset)

    def mint(self, subject: str, *roles: str, ttl: int = 900, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "roles": list(roles),
            "iat": now,
            "exp": now + ttl,
            **claims,
        }
        return jwt.encode({"alg": "ES256", "kid": self._key.kid}, payload, self._key)

    def header(self, subject: str, *roles: str) -> dict[str, str]:
        return {AUTHORIZATION: f"Bearer {self.mint(subject, *roles)}"}
