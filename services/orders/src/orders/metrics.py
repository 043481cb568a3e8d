"""The orders service's business metrics, in the app's registry beside the kit's RED metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from orders.model import Order


@dataclass(frozen=True, slots=True)
class OrderMetrics:
    placed: Counter
    revenue: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> OrderMetrics:
        return cls(
            placed=Counter("orders_placed", "Orders placed", ["currency"], registry=registry),
            revenue=Counter(
                "orders_revenue_minor_units",
                "Totals of the orders placed, in minor units of their currency (before any "
                "cancellation or refund)",
                ["currency"],
                registry=registry,
            ),
        )

    def order_placed(self, order: Order) -> None:
        self.placed.labels(order.currency).inc()
        self.revenue.labels(order.currency).inc(order.total)
