"""The payments service's settings: the kit's, under its own name."""

from __future__ import annotations

from dataclasses import dataclass

from shopkit.settings import KitSettings, env


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentsSettings(KitSettings):
    service_name: str = env(
        "SERVICE_NAME", "payments", help="service name used in logs, metrics and events"
    )
