"""Prometheus metrics: one registry per app, RED metrics by route template, business metrics beside them."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True, slots=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    in_flight: Gauge
    outbox_lag: Gauge
    events_published: Counter
    events_handled: Counter
    events_dead_lettered: Counter
    consumer_pending: Gauge
    upstream_calls: Counter
    token_revocations: Gauge

    @classmethod
    def create(cls, service: str) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        labels = {"service": service}
        return cls(
            registry=registry,
            requests=Counter(
                "http_requests",
                "HTTP requests answered",
                ["service", "method", "route", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "http_request_duration_seconds",
                "HTTP request latency",
                ["service", "method", "route"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            in_flight=Gauge(
                "http_requests_in_flight",
                "HTTP requests being handled",
                ["service"],
                registry=registry,
            ).labels(**labels),
            outbox_lag=Gauge(
                "outbox_lag_seconds",
                "Age of the oldest unpublished event",
                ["service"],
                registry=registry,
            ).labels(**labels),
            events_published=Counter(
                "events_published",
                "Events relayed to JetStream",
                ["service", "type"],
                registry=registry,
            ),
            events_handled=Counter(
                "events_handled",
                "Events consumed",
                ["service", "type", "outcome"],
                registry=registry,
            ),
            events_dead_lettered=Counter(
                "events_dead_lettered",
                "Events given up after bounded redelivery",
                ["service", "type"],
                registry=registry,
            ),
            consumer_pending=Gauge(
                "events_consumer_pending",
                "Events waiting for a durable consumer, as JetStream counted them with the last "
                "one it delivered (its consumer lag)",
                ["service", "consumer"],
                registry=registry,
            ),
            upstream_calls=Counter(
                "upstream_calls",
                "Calls to other services",
                ["service", "upstream", "outcome"],
                registry=registry,
            ),
            token_revocations=Gauge(
                "token_revocations",
                "Revoked subjects and sessions whose access tokens are refused until they expire",
                ["service", "kind"],
                registry=registry,
            ),
        )
