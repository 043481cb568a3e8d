"""Every setting the payments service reads is in the README table and in .env.example."""

from __future__ import annotations

from pathlib import Path

import pytest

from payments.settings import PaymentsSettings
from shopkit.settings import SettingsError, load, read_env_file
from shopkit.testing.documentation import settings_read, undocumented

ROOT = Path(__file__).resolve().parents[3]


def test_every_setting_read_is_documented() -> None:
    names = settings_read([PaymentsSettings], ROOT.glob("services/payments/src/**/*.py"))

    assert {"STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET", "RECONCILE_AFTER"} <= names
    assert undocumented(names, ROOT) == {"README.md": [], ".env.example": []}


def test_the_local_env_file_configures_payments() -> None:
    settings = load(
        PaymentsSettings, {**read_env_file(ROOT / ".env.example"), "SERVICE_NAME": "payments"}
    )
    assert settings.stripe_api_url.startswith("http")
    assert "whsec" not in repr(settings)


def test_the_example_secrets_are_refused_outside_a_developers_machine() -> None:
    example = {**read_env_file(ROOT / ".env.example"), "ENVIRONMENT": "production"}

    with pytest.raises(SettingsError) as refused:
        load(PaymentsSettings, example)

    assert "STRIPE_API_KEY, STRIPE_WEBHOOK_SECRET" in str(refused.value)
    assert "whsec_local" not in str(refused.value)
