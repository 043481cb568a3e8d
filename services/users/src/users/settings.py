"""The users service's settings: the kit's plus signing keys, password hashing, tokens and throttling."""

from __future__ import annotations

from dataclasses import dataclass

from shopkit import revocations
from shopkit.settings import KitSettings, Secret, env


@dataclass(frozen=True, slots=True, kw_only=True)
class UsersSettings(KitSettings):
    service_name: str = env(
        "SERVICE_NAME", "users", help="service name used in logs, metrics and events"
    )
    signing_keys: Secret = env(
        "SIGNING_KEYS",
        help="JWK set (JSON) of ES256 private keys; the first signs, the others still verify",
    )
    password_pepper: Secret = env("PASSWORD_PEPPER", help="HMAC key applied before bcrypt")
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

    def __post_init__(self) -> None:
        # Services replay the revocations of that window when they start: a longer-lived token
        # revoked before a restart would be accepted again.
        if self.access_token_ttl > revocations.REPLAY_WINDOW.total_seconds():
            raise ValueError(
                "ACCESS_TOKEN_TTL must be at most "
                f"{int(revocations.REPLAY_WINDOW.total_seconds())} seconds"
            )

    def clients(self) -> dict[str, str]:
        pairs = (item.partition(":") for item in self.service_clients.value.split(","))
        return {
            name.strip(): secret.strip() for name, _, secret in pairs if name.strip() and secret
        }
