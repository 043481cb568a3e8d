"""ECS JSON logs: one JSON object per line with the service, trace, span, request, user and event."""

from __future__ import annotations

import json
import logging

import pytest

from shopkit import context, logs


def test_a_log_line_is_ecs_json_with_the_trace_span_request_user_and_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given a request's work in the trace its caller named, for a signed-in user, on an event
    logs.configure("testsvc", "INFO")
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with context.scope(traceparent, request="req-123", event="evt-1") as span:
        context.user_id.set("user-9")
        # when it logs
        logging.getLogger("shop.test").info("order placed", extra={"order.id": "o-1"})
    logging.getLogger("shop.test").info("afterwards")

    # then the line is one ECS JSON object carrying who, what and which trace
    inside, outside = (json.loads(line) for line in capsys.readouterr().out.splitlines()[-2:])
    assert inside["message"] == "order placed"
    assert inside["log.level"] == "info"
    assert "@timestamp" in inside
    assert inside["service"]["name"] == "testsvc"
    assert inside["trace"] == {"id": "4bf92f3577b34da6a3ce929d0e0e4736"}
    assert inside["span"] == {"id": span.span_id}
    assert inside["http"]["request"]["id"] == "req-123"
    assert inside["user"]["id"] == "user-9"
    assert inside["event"]["id"] == "evt-1"
    assert inside["order"]["id"] == "o-1"
    # and lines after the work carry none of its ids
    assert {"trace", "span", "http", "user", "event"}.isdisjoint(outside)


def test_configuring_twice_does_not_double_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("testsvc", "INFO")
    logs.configure("testsvc", "INFO")
    logging.getLogger("shop.test").warning("once")
    assert capsys.readouterr().out.count('"once"') == 1
