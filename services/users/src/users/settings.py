"""The users service's settings: the kit's plus signing keys, password hashing, tokens and throttling."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from shopkit import revocations
from shopkit.settings import KitSettings, Secret, env

# The secrets of `.env.example`, by SHA-256: public, so allowed only with ENVIRONMENT=local.
# test_settings_documented holds this set and the file together.
EXAMPLE_SECRETS = frozenset(
    {
        "ef12805a2b39c0766617dcbf7ecccd1c545a845cb18f4d199b48c5266a8c6548",  # signing key local-1
        "44d61b03a9eb2564df832e3e76013843a583ebcb8e700b329be347aa993dcf2d",  # pepper
        "6e25752ec6f5294e77fb1e63e9a75615495b5be616c5a330b67bc8298f47da0a",  # admin password
        "c2a37f865b95dd7929cd43cd32efa93137b6044f4196655f7cc2e80550b82cdc",  # service clients
        "e3d3602f2cacf32165e9998d8af6a6ba6f8f1e90884eccac67b8f248cc2c05b3",
        "c86fa085c9890476fdf76ed611b5611f1dd3a8e9532bd806ef74ad9edbc19d7e",
        "4fb94d7b7d8feb79d1042179b312b62e201d0d1a4d0e5e6e26ad12ff7ae2f865",
        "ac07c6ccef0fb3c3a4eec6b725519a6a23209cd782ac4cfc6cf1abc19b63fbb9",
    }
)


def is_example_secret(value: str) -> bool:
    return hashlib.sha256(value.encode()).hexdigest() in EXAMPLE_SECRETS


def _private_keys(jwks_json: str) -> list[str]:
    """The private parts of a JWK set; none if it is malformed (SigningKeys reports that)."""
    try:
        keys = json.loads(jwks_json)["keys"]
        return [str(key["d"]) for key in keys if isinstance(key, dict) and "d" in key]
    except (ValueError, TypeError, KeyError):
        return []


@dataclass(frozen=True, slots=True, kw_only=True)
class UsersSettings(KitSettings):
    service_name: str = env(
        "SERVICE_NAME", "users", help="service name used in logs, metrics and events"
    )
    signing_keys: Secret = env(
        "SIGNING_KEYS",
        help="JWK set (JSON) of ES256 private keys; the first signs, the others still verify",
    )
    password_pepper: Secret = env(
        "PASSWORD_PEPPER", help="HMAC key applied before bcrypt, and deriving link tokens"
    )
    password_hash_cost: int = env("PASSWORD_HASH_COST", 12, help="bcrypt cost factor")
    access_token_ttl: int = env("ACCESS_TOKEN_TTL", 900, help="access token lifetime, seconds")
    refresh_token_ttl: int = env(
        "REFRESH_TOKEN_TTL", 30 * 24 * 3600, help="refresh token family lifetime, seconds"
    )
    service_token_ttl: int = env("SERVICE_TOKEN_TTL", 300, help="service token lifetime, seconds")
    service_clients: Secret = env(
        "SERVICE_CLIENTS", Secret(""), help="client-credentials accounts as id:secret,id:secret"
    )
    admin_email: str = env(
        "ADMIN_EMAIL", "", help="the first admin, created at start-up if missing"
    )
    admin_password: Secret = env("ADMIN_PASSWORD", Secret(""), help="password of the first admin")
    login_failures_per_account: int = env(
        "LOGIN_FAILURES_PER_ACCOUNT",
        5,
        help="failed logins per account and client within the window",
    )
    login_failures_per_client: int = env(
        "LOGIN_FAILURES_PER_CLIENT", 50, help="failed logins per client address within the window"
    )
    login_window: int = env("LOGIN_WINDOW", 900, help="login throttling window, seconds")
    password_guesses_per_account: int = env(
        "PASSWORD_GUESSES_PER_ACCOUNT",
        5,
        help="wrong current passwords per account within the login window, to change the password",
    )
    reset_requests_per_address: int = env(
        "RESET_REQUESTS_PER_ADDRESS", 3, help="password reset requests per email within the window"
    )
    reset_requests_per_client: int = env(
        "RESET_REQUESTS_PER_CLIENT",
        20,
        help="password reset requests per client address within the window",
    )
    reset_window: int = env("RESET_WINDOW", 3600, help="reset request throttling window, seconds")

    def __post_init__(self) -> None:
        # Services replay the revocations of that window when they start: a longer-lived token
        # revoked before a restart would be accepted again.
        if self.access_token_ttl > revocations.REPLAY_WINDOW.total_seconds():
            raise ValueError(
                "ACCESS_TOKEN_TTL must be at most "
                f"{int(revocations.REPLAY_WINDOW.total_seconds())} seconds"
            )
        if self.local:
            return
        secrets = {
            "SIGNING_KEYS": _private_keys(self.signing_keys.value),
            "PASSWORD_PEPPER": [self.password_pepper.value],
            "ADMIN_PASSWORD": [self.admin_password.value],
            "SERVICE_CLIENTS": list(self.clients().values()),
        }
        examples = [name for name, values in secrets.items() if any(map(is_example_secret, values))]
        if examples:
            raise ValueError(
                f"{', '.join(examples)} hold the public examples of .env.example, allowed only "
                "with ENVIRONMENT=local: set secrets of your own"
            )

    def clients(self) -> dict[str, str]:
        pairs = (item.partition(":") for item in self.service_clients.value.split(","))
        return {
            name.strip(): secret.strip() for name, _, secret in pairs if name.strip() and secret
        }
