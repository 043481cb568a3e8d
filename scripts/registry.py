"""The registry of services (services/registry.toml): names, local ports, gateway prefixes."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "services" / "registry.toml"
# One name everywhere (folder, package, console script, database, NATS stream, metrics label):
# lower-case letters and digits keep it valid in each of them.
NAME = re.compile(r"^[a-z][a-z0-9]{1,30}$")
PREFIX = re.compile(r"^[a-z][a-z0-9-]*$")
_KEYS = {"ports", "prefixes", "limited", "affinity"}
# nginx variables only (`$http_authorization$http_x_cart_token`): the key requests are hashed on.
AFFINITY = re.compile(r"^(\$[a-z_]+)+$")


class RegistryError(ValueError):
    """The registry file says something impossible; the message names the service and the key."""


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    ports: tuple[int, ...]
    prefixes: tuple[str, ...]
    limited: Mapping[str, str]
    affinity: str | None = None

    @property
    def instances(self) -> int:
        return len(self.ports)


def _service(name: str, table: Any) -> Service:
    if not NAME.match(name):
        raise RegistryError(f"{name!r}: a service name is lower-case letters and digits")
    if not isinstance(table, dict):
        raise RegistryError(f"{name}: expected a table")
    unknown = set(table) - _KEYS
    if unknown:
        raise RegistryError(f"{name}: unknown keys {sorted(unknown)}")
    ports, prefixes = table.get("ports"), table.get("prefixes", [])
    limited = table.get("limited", {})
    if not isinstance(ports, list) or not ports or not all(isinstance(p, int) for p in ports):
        raise RegistryError(f"{name}: ports must be a non-empty list of port numbers")
    if not isinstance(prefixes, list) or not all(
        isinstance(p, str) and PREFIX.match(p) for p in prefixes
    ):
        raise RegistryError(f"{name}: prefixes must be a list of path segments")
    if not isinstance(limited, dict) or not all(
        isinstance(path, str) and isinstance(zone, str) for path, zone in limited.items()
    ):
        raise RegistryError(f"{name}: limited maps an exact path to a limit_req zone")
    affinity = table.get("affinity")
    if affinity is not None and not (isinstance(affinity, str) and AFFINITY.match(affinity)):
        raise RegistryError(f"{name}: affinity is nginx variables, such as $http_authorization")
    return Service(name, tuple(ports), tuple(prefixes), dict(limited), affinity)


def parse(text: str) -> dict[str, Service]:
    """The services in registry order; ports and prefixes belong to one service each."""
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RegistryError(str(error)) from None
    services = {name: _service(name, table) for name, table in tables.items()}
    for key, noun in (("ports", "port"), ("prefixes", "prefix")):
        owners: dict[object, str] = {}
        for service in services.values():
            for value in getattr(service, key):
                if value in owners:
                    raise RegistryError(
                        f"{noun} {value} is both {owners[value]}'s and {service.name}'s"
                    )
                owners[value] = service.name
    return services


def load(path: Path = REGISTRY) -> dict[str, Service]:
    return parse(path.read_text())
