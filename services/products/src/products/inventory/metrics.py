"""Inventory's business metrics: reservations by outcome, and the oversell attempts refused."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from products.inventory.reservation import ReservationState


@dataclass(frozen=True, slots=True)
class InventoryMetrics:
    service: str
    reservations: Counter
    oversell_refused: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, service: str) -> InventoryMetrics:
        return cls(
            service=service,
            reservations=Counter(
                "stock_reservations",
                "Order reservations by outcome",
                ["service", "outcome"],
                registry=registry,
            ),
            oversell_refused=Counter(
                "oversell_attempts_refused",
                "Reservations refused because a line had too little stock",
                ["service"],
                registry=registry,
            ),
        )

    def count(self, outcome: ReservationState) -> None:
        self.reservations.labels(self.service, outcome.value).inc()
        if outcome is ReservationState.REFUSED:
            self.oversell_refused.labels(self.service).inc()
