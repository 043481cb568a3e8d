"""ECS JSON logs: one JSON object per line with the service, the request id and the user id."""

from __future__ import annotations

import json
import logging

import pytest

from shopkit import context, logs


def test_a_log_line_is_ecs_json_with_request_and_user_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("testsvc", "INFO")
    request_token = context.request_id.set("req-123")
    user_token = context.user_id.set("user-9")
    try:
        logging.getLogger("shop.test").info("order placed", extra={"order.id": "o-1"})
    finally:
        context.request_id.reset(request_token)
        context.user_id.reset(user_token)

    line = capsys.readouterr().out.strip().splitlines()[-1]
    document = json.loads(line)
    assert document["message"] == "order placed"
    assert document["log.level"] == "info"
    assert document["service"]["name"] == "testsvc"
    assert document["trace"]["id"] == "req-123"
    assert document["user"]["id"] == "user-9"
    assert document["order"]["id"] == "o-1"
    assert "@timestamp" in document


def test_configuring_twice_does_not_double_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("testsvc", "INFO")
    logs.configure("testsvc", "INFO")
    logging.getLogger("shop.test").warning("once")
    assert capsys.readouterr().out.count('"once"') == 1
