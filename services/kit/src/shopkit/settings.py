"""Settings read from environment variables: typed, validated all at once, secrets never printed."""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["KitSettings", "Secret", "SettingsError", "env", "env_names", "load", "read_env_file"]

T = TypeVar("T")
LOCAL = "local"
_MISSING: Any = dataclasses.MISSING


@dataclass(frozen=True, slots=True)
class Secret:
    """A value that must never reach a log line or a traceback."""

    value: str

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class SettingsError(ValueError):
    """Every problem with the environment, reported together."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))
        self.problems = problems


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank and # comment lines skipped, one pair of outer quotes removed."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def env(name: str, default: Any = _MISSING, *, help: str) -> Any:
    """Declare a setting read from the environment variable `name`."""
    return dataclasses.field(default=default, metadata={"env": name, "help": help})


def env_names(cls: type) -> list[str]:
    """Every environment variable a settings class reads (the README table must list them)."""
    return [f.metadata["env"] for f in dataclasses.fields(cls) if "env" in f.metadata]


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _parse_tuple(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


_PARSERS: dict[Any, Callable[[str], Any]] = {
    str: str,
    int: int,
    float: float,
    bool: _parse_bool,
    Secret: Secret,
    tuple[str, ...]: _parse_tuple,
}


def _parser_for(annotation: Any) -> Callable[[str], Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return _PARSERS[annotation]


def load(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """Build `cls` from the environment, collecting every error before raising."""
    source = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = field.metadata.get("env")
        if name is None:
            continue
        raw = source.get(name)
        if raw is None or raw == "":
            if field.default is _MISSING:
                problems.append(f"{name} is required ({field.metadata['help']})")
            continue
        try:
            values[field.name] = _parser_for(hints[field.name])(raw)
        except (ValueError, TypeError) as error:
            # Never echo the raw value: it may be a secret.
            problems.append(f"{name} is invalid: {error.__class__.__name__}")
    if problems:
        raise SettingsError(problems)
    try:
        return cls(**values)
    except ValueError as error:
        raise SettingsError([str(error)]) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class KitSettings:
    """What every service reads; a service's own settings class extends this one."""

    service_name: str = env("SERVICE_NAME", help="service name used in logs, metrics and events")
    host: str = env("HOST", "127.0.0.1", help="address the HTTP server binds")
    port: int = env("PORT", 8000, help="port the HTTP server binds")
    mongo_url: Secret = env("MONGO_URL", help="MongoDB connection string (FerretDB locally)")
    mongo_database: str = env(
        "MONGO_DATABASE", "", help="database name; defaults to the service name"
    )
    nats_url: str = env("NATS_URL", "nats://127.0.0.1:4222", help="NATS server with JetStream")
    log_level: str = env("LOG_LEVEL", "INFO", help="logging level")
    log_requests: bool = env(
        "LOG_REQUESTS",
        False,
        help="log every request served and event handled at INFO, not only failures and slow ones "
        "(to follow one trace through the logs)",
    )
    jwks_url: str = env("JWKS_URL", "", help="where services fetch the users service's public keys")
    jwt_issuer: str = env("JWT_ISSUER", "https://shop.local", help="issuer of access tokens")
    jwt_audience: str = env("JWT_AUDIENCE", "shop", help="audience of access tokens")
    shutdown_timeout: float = env(
        "SHUTDOWN_TIMEOUT", 20.0, help="seconds to drain requests on stop"
    )
    # Production unless told otherwise, so a deployment that forgets it refuses example secrets.
    environment: str = env(
        "ENVIRONMENT",
        "production",
        help="`local` on a developer's machine (the example secrets are allowed), else production",
    )

    apm_server_url: str = env(
        "ELASTIC_APM_SERVER_URL",
        "",
        help="Elastic APM server to send a transaction per request and event to; empty: APM off",
    )
    apm_secret_token: Secret | None = env(
        "ELASTIC_APM_SECRET_TOKEN", None, help="secret token the APM server expects, if any"
    )
    apm_environment: str = env(
        "ELASTIC_APM_ENVIRONMENT", "", help="environment name in APM; defaults to ENVIRONMENT"
    )

    @property
    def local(self) -> bool:
        return self.environment == LOCAL

    @property
    def database(self) -> str:
        return self.mongo_database or self.service_name
