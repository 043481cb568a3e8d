"""Inventory's business metrics: reservations by outcome, the oversell attempts refused, and the
reservations the sweeper finds stuck."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from products.inventory.reservation import ReservationState


@dataclass(frozen=True, slots=True)
class InventoryMetrics:
    service: str
    reservations: Counter
    oversell_refused: Counter
    stuck: Gauge

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
            stuck=Gauge(
                "stock_reservations_stuck",
                "Open reservations this instance's last sweep found long past their due time "
                "(at most one sweep's batch)",
                ["service"],
                registry=registry,
            ),
        )

    def count(self, outcome: ReservationState) -> None:
        self.reservations.labels(self.service, outcome.value).inc()
        if outcome is ReservationState.REFUSED:
            self.oversell_refused.labels(self.service).inc()

    def stuck_found(self, count: int) -> None:
        self.stuck.labels(self.service).set(count)
