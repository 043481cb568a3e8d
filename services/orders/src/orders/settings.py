"""The orders service's settings: the kit's, under its own name."""

from __future__ import annotations

from dataclasses import dataclass

from shopkit.settings import KitSettings, env


@dataclass(frozen=True, slots=True, kw_only=True)
class OrdersSettings(KitSettings):
    service_name: str = env(
        "SERVICE_NAME", "orders", help="service name used in logs, metrics and events"
    )
