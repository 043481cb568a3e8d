"""Every setting the notifications service reads is in the README table and in .env.example."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifications.settings import NotificationsSettings
from shopkit.settings import SettingsError, load, read_env_file
from shopkit.testing.documentation import settings_read, undocumented

ROOT = Path(__file__).resolve().parents[3]


def test_every_setting_read_is_documented() -> None:
    names = settings_read([NotificationsSettings], ROOT.glob("services/notifications/src/**/*.py"))

    assert {"SMTP_HOST", "TWILIO_API_URL", "UNSUBSCRIBE_SECRET", "SEND_ATTEMPTS"} <= names
    assert undocumented(names, ROOT) == {"README.md": [], ".env.example": []}


def test_the_local_env_file_configures_notifications() -> None:
    settings = load(
        NotificationsSettings,
        {**read_env_file(ROOT / ".env.example"), "SERVICE_NAME": "notifications"},
    )
    assert settings.smtp_port == 1025
    assert settings.mail_from == "Shop <shop@shop.local>"
    assert "local-unsubscribe-secret" not in repr(settings)


def test_the_example_unsubscribe_secret_is_refused_outside_a_developers_machine() -> None:
    example = {**read_env_file(ROOT / ".env.example"), "ENVIRONMENT": "production"}

    with pytest.raises(SettingsError) as refused:
        load(NotificationsSettings, example)

    assert "UNSUBSCRIBE_SECRET" in str(refused.value)
