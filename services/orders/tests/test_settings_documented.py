"""Every setting the orders service reads is in the README table and in .env.example."""

from __future__ import annotations

from pathlib import Path

from orders.settings import OrdersSettings
from shopkit.settings import load, read_env_file
from shopkit.testing.documentation import settings_read, undocumented

ROOT = Path(__file__).resolve().parents[3]


def test_every_setting_read_is_documented() -> None:
    names = settings_read([OrdersSettings], ROOT.glob("services/orders/src/**/*.py"))

    assert {"CARTS_URL", "PAYMENT_WINDOW", "RATES_FILE"} <= names
    assert undocumented(names, ROOT) == {"README.md": [], ".env.example": []}


def test_the_local_env_file_configures_orders() -> None:
    settings = load(
        OrdersSettings, {**read_env_file(ROOT / ".env.example"), "SERVICE_NAME": "orders"}
    )
    assert settings.service_client_secret.value
    assert settings.payment_window > settings.checkout_deadline
