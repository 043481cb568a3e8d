"""The products packages' boundaries: catalog, inventory and search import none of each other."""

from __future__ import annotations

import ast
from pathlib import Path

import products

SOURCE = Path(products.__file__).parent
PACKAGES = ("catalog", "inventory", "search")
# What every package may import besides itself and the kit: values and interfaces, wired by app.py.
NEUTRAL = frozenset({"events", "keys", "model", "settings", "skus"})


def imported_modules(path: Path) -> set[str]:
    """Every `products...` module the file imports, type-checking imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from products import x` may name a module x: count it as one.
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("products.")}


def top_level(module: str) -> str:
    return module.split(".")[1]


def test_each_package_imports_only_itself_the_neutral_modules_and_the_kit() -> None:
    crossings = [
        f"{path.relative_to(SOURCE)} imports {module}"
        for package in PACKAGES
        for path in sorted((SOURCE / package).rglob("*.py"))
        for module in sorted(imported_modules(path))
        if top_level(module) not in {package, *NEUTRAL}
    ]
    assert crossings == []


def test_the_neutral_modules_import_no_package() -> None:
    crossings = [
        f"{name}.py imports {module}"
        for name in sorted(NEUTRAL)
        for module in sorted(imported_modules(SOURCE / f"{name}.py"))
        if top_level(module) not in NEUTRAL
    ]
    assert crossings == []


def test_the_check_sees_an_import_across_packages(tmp_path: Path) -> None:
    # given a module that reaches into another package in each of the ways Python allows
    module = tmp_path / "crossing.py"
    module.write_text(
        "import products.catalog.store\n"
        "from products.search import indexer\n"
        "from products.inventory.ledger import Ledger\n"
    )
    # when its imports are read, then all three packages show
    assert {top_level(name) for name in imported_modules(module)} == set(PACKAGES)
