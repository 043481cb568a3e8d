"""The notifications service's business metrics, in the app's registry beside the kit's RED metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True, slots=True)
class NotificationMetrics:
    messages: Counter
    possible_duplicates: Counter
    send_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> NotificationMetrics:
        return cls(
            messages=Counter(
                "notifications_messages",
                "Messages by channel, template and outcome: sent, retried, failed (for good), "
                "suppressed, opted_out, rate_limited, dead_lettered",
                ["channel", "template", "outcome"],
                registry=registry,
            ),
            possible_duplicates=Counter(
                "notifications_possible_duplicates",
                "Attempts whose instance died between the hand-over and its record: the message "
                "is attempted again and may arrive twice",
                ["channel"],
                registry=registry,
            ),
            send_seconds=Histogram(
                "notifications_send_seconds",
                "Seconds one hand-over to the SMTP server or Twilio took",
                ["channel"],
                registry=registry,
            ),
        )

    def count(self, channel: str, template: str, outcome: str) -> None:
        self.messages.labels(channel, template, outcome).inc()
