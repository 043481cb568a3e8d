"""Every setting the products service reads is in the README table and in .env.example."""

from __future__ import annotations

from pathlib import Path

from products.settings import ProductsSettings
from shopkit.settings import load, read_env_file
from shopkit.testing.documentation import settings_read, undocumented

ROOT = Path(__file__).resolve().parents[3]


def test_every_setting_read_is_documented() -> None:
    names = settings_read([ProductsSettings], ROOT.glob("services/products/src/**/*.py"))

    assert {"OPENSEARCH_URL", "RESERVATION_TTL"} <= names
    assert undocumented(names, ROOT) == {"README.md": [], ".env.example": []}


def test_the_local_env_file_configures_products() -> None:
    settings = load(
        ProductsSettings, {**read_env_file(ROOT / ".env.example"), "SERVICE_NAME": "products"}
    )
    assert settings.opensearch_url.startswith("http")
