"""The carts service's business metric: carts opened, the denominator of cart-to-order conversion."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter


@dataclass(frozen=True, slots=True)
class CartMetrics:
    opened: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> CartMetrics:
        return cls(
            opened=Counter(
                "carts_opened",
                "Carts opened, by owner: guest or user",
                ["owner"],
                registry=registry,
            )
        )
