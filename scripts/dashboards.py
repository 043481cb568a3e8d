"""Grafana dashboards as code: `uv run python scripts/dashboards.py` writes dashboards/*.json.

An overview of every service, one dashboard per service of services/registry.toml (a new service
gets its own), the business and the event pipeline. Queries read the recording rules of
observability/prometheus/rules/; the datasource is the provisioned one, uid `prometheus`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import registry

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
COLUMNS, PANEL_WIDTH, PANEL_HEIGHT = 2, 12, 8


@dataclass(frozen=True, slots=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"


@dataclass(frozen=True, slots=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]

    @property
    def file_name(self) -> str:
        return f"{self.uid.removeprefix('shop-')}.json"


def panel(title: str, unit: str, *queries: tuple[str, str]) -> Panel:
    return Panel(title, tuple(Query(expr, legend) for expr, legend in queries), unit)


def overview(services: Sequence[str]) -> Dashboard:
    return Dashboard(
        "shop-overview",
        "Shop: overview",
        "Rate, errors and duration of every service, and the gateway in front of them.",
        (
            panel("Requests per second", "reqps", ("service:http_requests:rate1m", "{{service}}")),
            panel(
                "Server errors (5xx share)",
                "percentunit",
                ("service:http_errors:ratio_rate1m", "{{service}}"),
            ),
            panel(
                "p99 latency",
                "s",
                (
                    'service:http_request_duration_seconds:quantile1m{quantile="0.99"}',
                    "{{service}}",
                ),
            ),
            panel(
                "p50 latency",
                "s",
                ('service:http_request_duration_seconds:quantile1m{quantile="0.5"}', "{{service}}"),
            ),
            panel(
                "Instances up",
                "short",
                (f'sum by (job) (up{{job=~"{"|".join(services)}"}})', "{{job}}"),
            ),
            panel(
                "Gateway: requests and connections",
                "short",
                ("gateway:nginx_http_requests:rate1m", "requests/s"),
                ("sum(nginx_connections_active)", "active connections"),
            ),
            panel(
                "Calls between services",
                "reqps",
                ("service:upstream_calls:rate1m", "{{service}} → {{upstream}} {{outcome}}"),
            ),
        ),
    )


def service_dashboard(name: str) -> Dashboard:
    of = f'service="{name}"'
    return Dashboard(
        f"shop-service-{name}",
        f"Shop: {name}",
        f"The {name} service by route: rate, errors, duration; and its instances.",
        (
            panel(
                "Requests per second by route",
                "reqps",
                (f"service_route:http_requests:rate1m{{{of}}}", "{{method}} {{route}}"),
            ),
            panel(
                "Server errors (5xx share) by route",
                "percentunit",
                (f"service_route:http_errors:ratio_rate1m{{{of}}}", "{{method}} {{route}}"),
            ),
            panel(
                "Latency percentiles",
                "s",
                (f"service:http_request_duration_seconds:quantile1m{{{of}}}", "p{{quantile}}"),
            ),
            panel(
                "p99 latency by route",
                "s",
                (
                    f'service_route:http_request_duration_seconds:quantile1m{{{of}, quantile="0.99"}}',
                    "{{method}} {{route}}",
                ),
            ),
            panel(
                "Instances up",
                "short",
                (f'up{{job="{name}"}}', "{{instance}}"),
            ),
            panel(
                "Requests in flight",
                "short",
                (f"sum by (instance) (http_requests_in_flight{{{of}}})", "{{instance}}"),
            ),
        ),
    )


def business() -> Dashboard:
    return Dashboard(
        "shop-business",
        "Shop: business",
        "Orders, revenue, conversion, payments and stock-outs.",
        (
            panel(
                "Orders per minute",
                "short",
                ("60 * shop:orders_placed:rate5m", "{{currency}}"),
            ),
            panel(
                "Revenue per minute (minor units, orders placed)",
                "short",
                ("60 * shop:orders_revenue_minor_units:rate5m", "{{currency}}"),
            ),
            panel(
                "Cart-to-order conversion (last hour)",
                "percentunit",
                ("shop:cart_to_order:ratio_rate1h", "orders per cart opened"),
            ),
            panel(
                "Payments per minute",
                "short",
                ("60 * shop:payments_succeeded:rate5m", "succeeded {{currency}}"),
                ("60 * shop:payments_failed:rate5m", "failed: {{code}}"),
            ),
            panel(
                "Stock-outs: reservations refused per minute",
                "short",
                ("60 * shop:oversell_attempts_refused:rate5m", "refused"),
            ),
            panel(
                "Reservations stuck",
                "short",
                ("shop:stock_reservations_stuck:max", "stuck"),
            ),
            panel(
                "Disputes and amount mismatches (last hour)",
                "short",
                ("shop:payments_disputes:increase1h", "disputes"),
                ("shop:payments_amount_mismatches:increase1h", "amount mismatches"),
            ),
        ),
    )


def events() -> Dashboard:
    return Dashboard(
        "shop-events",
        "Shop: event pipeline",
        "Outboxes, consumers, dead letters, and the messages sent.",
        (
            panel(
                "Outbox lag (oldest unpublished event)",
                "s",
                ("service:outbox_lag_seconds:max", "{{service}}"),
            ),
            panel(
                "Consumer lag (events waiting)",
                "short",
                ("consumer:events_consumer_pending:max", "{{consumer}}"),
            ),
            panel(
                "Events published per second",
                "short",
                ("service:events_published:rate1m", "{{service}}"),
            ),
            panel(
                "Events handled per second",
                "short",
                ("service:events_handled:rate1m", "{{service}} {{outcome}}"),
            ),
            panel(
                "Events dead-lettered (15 min)",
                "short",
                ("service:events_dead_lettered:increase15m", "{{service}} {{type}}"),
            ),
            panel(
                "Messages per minute by outcome",
                "short",
                ("60 * shop:notifications_messages:rate5m", "{{channel}} {{outcome}}"),
            ),
            panel(
                "Messages failed or dead-lettered (15 min)",
                "short",
                ("shop:notifications_failed:increase15m", "{{channel}} {{outcome}}"),
            ),
        ),
    )


def dashboards(services: Sequence[str]) -> tuple[Dashboard, ...]:
    return (
        overview(services),
        *(service_dashboard(name) for name in services),
        business(),
        events(),
    )


def to_json(dashboard: Dashboard) -> dict[str, Any]:
    """Grafana's dashboard model: panels two to a row, ids from 1, every query on the
    provisioned datasource."""
    panels = []
    for index, each in enumerate(dashboard.panels):
        targets = [
            {
                "refId": chr(ord("A") + n),
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend,
                "range": True,
            }
            for n, query in enumerate(each.queries)
        ]
        panels.append(
            {
                "id": index + 1,
                "type": "timeseries",
                "title": each.title,
                "datasource": DATASOURCE,
                "gridPos": {
                    "x": (index % COLUMNS) * PANEL_WIDTH,
                    "y": (index // COLUMNS) * PANEL_HEIGHT,
                    "w": PANEL_WIDTH,
                    "h": PANEL_HEIGHT,
                },
                "fieldConfig": {"defaults": {"unit": each.unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": targets,
            }
        )
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["shop"],
        "timezone": "utc",
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": []},
        "panels": panels,
    }


def rendered(services: Sequence[str] | None = None) -> dict[str, str]:
    """Each dashboard file's name and its text, as committed."""
    names = list(services if services is not None else registry.load())
    return {
        each.file_name: json.dumps(to_json(each), indent=2, ensure_ascii=False) + "\n"
        for each in dashboards(names)
    }


def write(files: Mapping[str, str], folder: Path = DASHBOARDS) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DASHBOARDS, help="folder to write into")
    args = parser.parse_args(argv)
    write(rendered(), args.out)


if __name__ == "__main__":
    main()
