"""Access-token verification against a cached JWKS, deny-by-default route access and role checks."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiohttp
from aiohttp import web
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from shopkit.headers import AUTHORIZATION
from shopkit.problems import Forbidden, ServiceUnavailable, Unauthorized

__all__ = [
    "PRINCIPAL",
    "PUBLIC",
    "STAFF_ROLES",
    "JwksKeys",
    "KeySource",
    "Principal",
    "RevocationList",
    "StaticKeys",
    "TokenVerifier",
    "authorize",
    "optional_principal",
    "principal",
    "public",
    "requires",
    "signed_in_or_not",
]

ALGORITHMS = ["ES256"]
STAFF_ROLES = ("staff", "admin")
Handler = TypeVar("Handler", bound=Callable[..., Awaitable[web.StreamResponse]])
_ACCESS_ATTR = "__shop_access__"
PUBLIC = "public"
SIGNED_IN_OR_NOT = "signed_in_or_not"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (customer, staff, admin) or another service."""

    subject: str
    roles: frozenset[str]
    session_id: str | None = None

    def has_any(self, *roles: str) -> bool:
        return not self.roles.isdisjoint(roles)


PRINCIPAL = web.RequestKey("principal", Principal)


class KeySource(Protocol):
    async def keys(self, kid: str | None) -> KeySet: ...


class RevocationList(Protocol):
    """What the verifier asks of the revocations in force (`shopkit.revocations.Revocations`);
    a protocol, so verifying tokens does not depend on how revocations arrive."""

    def refuses(self, subject: str, session_id: str | None, issued_at: float) -> bool: ...


class StaticKeys:
    """Keys known in-process (the users service verifies its own tokens this way)."""

    def __init__(self, provider: Callable[[], KeySet]) -> None:
        self._provider = provider

    async def keys(self, kid: str | None) -> KeySet:
        return self._provider()


class JwksKeys:
    """The users service's JWKS, fetched over HTTP and cached; an unknown `kid` triggers a bounded refresh."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        ttl: float = 300.0,
        min_refresh: float = 10.0,
    ) -> None:
        self._session, self._url, self._ttl, self._min_refresh = session, url, ttl, min_refresh
        self._keyset: KeySet | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    def _known(self, kid: str | None) -> bool:
        return self._keyset is not None and any(k.kid == kid for k in self._keyset.keys)

    async def keys(self, kid: str | None) -> KeySet:
        age = time.monotonic() - self._fetched_at
        stale = self._keyset is None or age > self._ttl
        if stale or (not self._known(kid) and age > self._min_refresh):
            async with self._lock:
                age = time.monotonic() - self._fetched_at
                if self._keyset is None or age > self._min_refresh:
                    await self._refresh()
        if self._keyset is None:
            raise ServiceUnavailable("signing keys are not available")
        return self._keyset

    async def _refresh(self) -> None:
        try:
            async with self._session.get(
                self._url, timeout=aiohttp.ClientTimeout(total=3)
            ) as response:
                response.raise_for_status()
                document = await response.json(content_type=None)
            self._keyset = KeySet.import_key_set(document)
            self._fetched_at = time.monotonic()
        except (aiohttp.ClientError, TimeoutError, ValueError, JoseError):
            # Keep serving with the keys we have; an empty cache makes verification answer 503.
            self._fetched_at = time.monotonic()


class TokenVerifier:
    """Checks signature, algorithm, issuer, audience, expiry and revocation; anything else is refused.

    A token that verified is remembered for at most `cache_seconds` (and never past its expiry), so
    a client sending the same token on every request pays for one signature check, not thousands.
    """

    def __init__(
        self,
        keys: KeySource,
        issuer: str,
        audience: str,
        leeway: int = 30,
        cache_seconds: float = 60.0,
        cache_size: int = 10_000,
        revocations: RevocationList | None = None,
    ) -> None:
        self._keys = keys
        self._revocations = revocations
        self._registry = jwt.JWTClaimsRegistry(
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            sub={"essential": True},
            exp={"essential": True},
        )
        # token -> (remembered until, who, issued at)
        self._cache: OrderedDict[str, tuple[float, Principal, float]] = OrderedDict()
        self._cache_seconds, self._cache_size = cache_seconds, cache_size

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            if cached[0] > time.time():
                return self._unrevoked(cached[1], cached[2])
            del self._cache[token]
        try:
            header = _unverified_header(token)
            keyset = await self._keys.keys(header.get("kid"))
            decoded = jwt.decode(token, keyset, algorithms=ALGORITHMS)
            self._registry.validate(decoded.claims)
        except (JoseError, ValueError, TypeError, KeyError) as error:
            raise Unauthorized("invalid access token") from error
        roles = decoded.claims.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthorized("invalid access token")
        session = decoded.claims.get("sid")
        issued_at = decoded.claims.get("iat")
        found = Principal(
            subject=str(decoded.claims["sub"]),
            roles=frozenset(roles),
            session_id=session if isinstance(session, str) else None,
        )
        # A token that does not say when it was issued is as old as can be: any cut-off covers it.
        issued = float(issued_at) if isinstance(issued_at, int | float) else 0.0
        self._remember(
            token,
            min(float(decoded.claims["exp"]), time.time() + self._cache_seconds),
            found,
            issued,
        )
        return self._unrevoked(found, issued)

    def _unrevoked(self, found: Principal, issued_at: float) -> Principal:
        """Checked on every request, cached or not: a revocation applies from the moment it arrives."""
        if self._revocations is not None and self._revocations.refuses(
            found.subject, found.session_id, issued_at
        ):
            raise Unauthorized("the access token was revoked; sign in again")
        return found

    def _remember(self, token: str, until: float, found: Principal, issued_at: float) -> None:
        self._cache[token] = (until, found, issued_at)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _unverified_header(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    if not isinstance(header, dict) or header.get("alg") not in ALGORITHMS:
        raise ValueError("unsupported algorithm")
    return header


def public(handler: Handler) -> Handler:
    """Mark a handler as reachable without a token (everything else needs one)."""
    setattr(handler, _ACCESS_ATTR, PUBLIC)
    return handler


def signed_in_or_not(handler: Handler) -> Handler:
    """Mark a handler as serving guests and signed-in callers alike, each their own resource (a
    cart): without a token the caller is a guest; a token that fails is a 401, never a silent
    guest, so a client whose token expired does not find itself writing to another resource."""
    setattr(handler, _ACCESS_ATTR, SIGNED_IN_OR_NOT)
    return handler


def requires(*roles: str) -> Callable[[Handler], Handler]:
    """Mark a handler as reachable only by a principal holding one of `roles`."""

    def mark(handler: Handler) -> Handler:
        setattr(handler, _ACCESS_ATTR, frozenset(roles))
        return handler

    return mark


def principal(request: web.Request) -> Principal:
    found = request.get(PRINCIPAL)
    if not isinstance(found, Principal):
        raise Unauthorized()
    return found


def optional_principal(request: web.Request) -> Principal | None:
    found = request.get(PRINCIPAL)
    return found if isinstance(found, Principal) else None


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get(AUTHORIZATION, "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authorize(request: web.Request, verifier: TokenVerifier) -> Principal | None:
    """Authenticate the caller and apply the handler's access rule; deny unless a rule allows."""
    handler = request.match_info.handler
    access = getattr(handler, _ACCESS_ATTR, None)
    token = bearer_token(request)
    if access == PUBLIC:
        # A stale token must not stop anyone from logging in or browsing: public routes ignore it.
        try:
            return await verifier.verify(token) if token else None
        except (Unauthorized, ServiceUnavailable):
            return None
    found = await verifier.verify(token) if token else None
    if found is None and access == SIGNED_IN_OR_NOT:
        return None
    if found is None:
        raise Unauthorized()
    if isinstance(access, frozenset) and not found.has_any(*access):
        raise Forbidden("this action needs one of the roles: " + ", ".join(sorted(access)))
    return found
