"""The local stack (`./task up`), planned without starting anything: every process and its settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import registry  # scripts/, put on sys.path by conftest.py
import stack

from orders.settings import OrdersSettings
from payments.settings import PaymentsSettings
from shopkit.settings import load


@pytest.fixture
def planned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, stack.Peer]:
    """The stack's processes by name, their state under a scratch folder (SQLite: no cluster)."""
    monkeypatch.setattr(stack, "RUN", tmp_path)
    monkeypatch.setattr(stack, "LOGS", tmp_path / "logs")
    env = {**stack.stack_env(), "FERRETDB_BACKEND": "sqlite"}
    return {part.name: part for part in stack.parts(env)}


def test_the_stack_runs_stripe_mock_behind_its_recording_proxy_before_every_service(
    planned: dict[str, stack.Peer],
) -> None:
    names = list(planned)
    stripe, proxy = planned["stripe-mock"], planned["stripe-proxy"]
    assert proxy.port == 12111
    assert stripe.port == 12112
    assert proxy.argv[-4:] == ["--upstream", "http://127.0.0.1:12112", "--port", "12111"]
    assert "-https-addr" in stripe.argv
    assert "127.0.0.1:" in stripe.argv
    assert names.index("stripe-proxy") > names.index("stripe-mock")
    for name, service in registry.load().items():
        for port in service.ports:
            assert names.index(f"{name}-{port}") > names.index("stripe-proxy")
            assert planned[f"{name}-{port}"].env["PORT"] == str(port)
    assert {"orders-8131", "orders-8132", "payments-8141", "payments-8142"} <= set(names)
    assert names[-1] == "nginx"


def test_the_gateway_of_the_stack_has_its_internal_listener_on_8090(
    planned: dict[str, stack.Peer], tmp_path: Path
) -> None:
    config = (tmp_path / "nginx" / "nginx.conf").read_text()
    assert "listen 127.0.0.1:8080;" in config
    assert "listen 127.0.0.1:8090;" in config
    for upstream in ("users", "products", "carts", "orders", "payments"):
        assert f"upstream {upstream} {{" in config


def test_the_services_of_the_stack_reach_each_other_and_stripe_as_env_example_says(
    planned: dict[str, stack.Peer],
) -> None:
    orders_env = planned["orders-8131"].env
    payments_env = planned["payments-8141"].env
    # orders calls everyone through the internal listener, with a secret users knows
    orders = load(OrdersSettings, dict(orders_env))
    internal = f"http://127.0.0.1:{stack.INTERNAL_PORT}"
    assert {orders.carts_url, orders.products_url, orders.payments_url, orders.users_url} == {
        internal
    }
    clients = dict(
        pair.split(":", 1) for pair in planned["users-8101"].env["SERVICE_CLIENTS"].split(",")
    )
    assert clients["orders"] == orders.service_client_secret.value
    assert planned["carts-8121"].env["PRODUCTS_URL"] == internal
    # payments talks to the stack's stripe-mock, with the example secrets a local run allows
    payments = load(PaymentsSettings, dict(payments_env))
    assert payments.stripe_api_url == f"http://127.0.0.1:{stack.STRIPE_PORT}"
    assert payments.local
    # and outside `local`, those example secrets are refused
    with pytest.raises(ValueError, match="STRIPE_API_KEY, STRIPE_WEBHOOK_SECRET"):
        load(PaymentsSettings, {**payments_env, "ENVIRONMENT": "production"})


def test_the_plan_prints_every_process_and_starts_none(
    planned: dict[str, stack.Peer], capsys: pytest.CaptureFixture[str]
) -> None:
    stack.main(["plan"])

    printed = capsys.readouterr().out
    assert all(name in printed for name in planned)
    assert "stripe-mock" in printed
    assert ":12112" in printed
    assert ":12111" in printed
    assert not (stack.RUN / "pids.json").exists()
