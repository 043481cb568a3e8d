"""Checks that every environment variable the code reads is documented in the README and .env.example."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from shopkit.settings import env_names

__all__ = ["settings_read", "undocumented"]

_DIRECT_READ = re.compile(
    r"""(?:environ(?:\.get)?\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]*)["']"""
)


def settings_read(settings_classes: Iterable[type], sources: Iterable[Path]) -> set[str]:
    """Names declared by settings classes plus any read directly from os.environ in `sources`."""
    names = {name for cls in settings_classes for name in env_names(cls)}
    for path in sources:
        names |= set(_DIRECT_READ.findall(path.read_text()))
    return names


def undocumented(names: set[str], root: Path) -> dict[str, list[str]]:
    """For each document, the names it fails to list (empty lists when all is well)."""
    readme = root.joinpath("README.md").read_text()
    example = root.joinpath(".env.example").read_text()
    in_table = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", readme, re.MULTILINE))
    in_example = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    return {
        "README.md": sorted(names - in_table),
        ".env.example": sorted(names - in_example - _TEST_ONLY),
    }


# Read only by the test plugin; they belong in the README table but not in the stack's .env.
_TEST_ONLY = {
    "SHOP_TEST_MONGO_URL",
    "SHOP_TEST_NATS_URL",
    "SHOP_TEST_OPENSEARCH_URL",
    "SHOP_TEST_STRIPE_URL",
}
