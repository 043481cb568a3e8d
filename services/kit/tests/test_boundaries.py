"""The kit never imports a service: neither today's (a ruff rule) nor any registered later."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
KIT = ROOT / "services" / "kit" / "src" / "shopkit"
REGISTRY = ROOT / "services" / "registry.toml"


def imported_roots(source: str) -> set[str]:
    """The top-level packages a module imports (relative imports stay inside their package)."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def services_imported_by_the_kit(services: set[str]) -> dict[str, set[str]]:
    found = {
        str(path.relative_to(ROOT)): imported_roots(path.read_text()) & services
        for path in sorted(KIT.rglob("*.py"))
    }
    return {path: names for path, names in found.items() if names}


def test_the_kit_imports_no_registered_service() -> None:
    # Given every service of the registry, today's and those `./task new-service` adds later
    services = set(tomllib.loads(REGISTRY.read_text()))
    assert {"users", "products"} <= services
    # When the kit's modules are read, then none of them imports one
    assert services_imported_by_the_kit(services) == {}


def test_an_import_of_a_registered_service_is_found_in_any_form() -> None:
    source = (
        "import carts\nimport orders.store as store\nfrom payments.api import charge\n"
        "from shopkit import clock\nfrom . import keys\n"
    )
    assert imported_roots(source) & {"carts", "orders", "payments", "shopkit"} == {
        "carts",
        "orders",
        "payments",
        "shopkit",
    }
    assert "keys" not in imported_roots(source)


def _ruff_on_a_kit_module(source: str) -> subprocess.CompletedProcess[str]:
    """Ruff on `source` as if it were a module of the kit (so the kit's ruff.toml applies)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--select",
            "TID251",
            "--output-format",
            "concise",
            "--stdin-filename",
            str(KIT / "probe.py"),
            "-",
        ],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_ruff_refuses_a_service_import_in_the_kit() -> None:
    for source in ("import users\n", "from products.catalog.keys import CATALOG\n"):
        result = _ruff_on_a_kit_module(source)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "TID251" in result.stdout
        assert "the kit never imports a service" in result.stdout


def test_ruff_lets_the_kit_import_itself() -> None:
    result = _ruff_on_a_kit_module("from shopkit import clock\n\nclock.now()\n")
    assert result.returncode == 0, result.stdout + result.stderr
