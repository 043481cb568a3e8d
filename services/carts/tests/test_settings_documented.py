"""Every setting the carts service reads is in the README table and in .env.example."""

from __future__ import annotations

from pathlib import Path

from carts.settings import CartsSettings
from shopkit.settings import load, read_env_file
from shopkit.testing.documentation import settings_read, undocumented

ROOT = Path(__file__).resolve().parents[3]


def test_every_setting_read_is_documented() -> None:
    names = settings_read([CartsSettings], ROOT.glob("services/carts/src/**/*.py"))

    assert {"PRODUCTS_URL", "GUEST_CART_DAYS"} <= names
    assert undocumented(names, ROOT) == {"README.md": [], ".env.example": []}


def test_the_local_env_file_configures_carts() -> None:
    settings = load(
        CartsSettings, {**read_env_file(ROOT / ".env.example"), "SERVICE_NAME": "carts"}
    )
    assert settings.products_url.startswith("http")
