"""Access-token signing keys: the first key of the set signs, every key verifies until it is retired."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

ALGORITHM = "ES256"


class SigningKeys:
    def __init__(self, jwks_json: str) -> None:
        document = json.loads(jwks_json)
        keys = [ECKey.import_key(item) for item in document["keys"]]
        if not keys or any(not key.is_private or not key.kid for key in keys):
            raise ValueError("SIGNING_KEYS needs at least one private P-256 key, each with a kid")
        self._active = keys[0]
        self._public = KeySet([ECKey.import_key(k.as_dict(private=False)) for k in keys])
        self._jwks = {
            "keys": [{**k.as_dict(private=False), "use": "sig", "alg": ALGORITHM} for k in keys]
        }

    @property
    def public_keys(self) -> KeySet:
        return self._public

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    def sign(
        self,
        *,
        subject: str,
        roles: Iterable[str],
        issuer: str,
        audience: str,
        ttl: int,
        extra: dict[str, Any] | None = None,
        issued_at: float | None = None,
    ) -> str:
        """`issued_at`: when the account the claims come from was about to be read (default now)."""
        issued_at = time.time() if issued_at is None else issued_at
        now = int(issued_at)
        claims = {
            "iss": issuer,
            "aud": audience,
            "sub": subject,
            "roles": sorted(roles),
            # To the millisecond (a NumericDate may have a fraction): a revocation refuses the
            # tokens issued up to a moment, so one issued in the same second after it stays good.
            "iat": int(issued_at * 1000) / 1000,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            **(extra or {}),
        }
        header = {"alg": ALGORITHM, "kid": self._active.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self._active, algorithms=[ALGORITHM])
