"""The event table of docs/architecture.md lists exactly the event types the code defines, and the code
names event types only where they are defined."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "architecture.md"
SECTION = "## Events"
# Where event types are defined: each service's events.py, and the kit's revocations (the two events
# users publishes whose contract belongs to the kit's verifier).
KIT_DEFINITIONS = ROOT / "services" / "kit" / "src" / "shopkit" / "revocations.py"
ROW = re.compile(r"^\| `([^`]+)` \|")


def sources() -> list[Path]:
    return sorted(ROOT.glob("services/*/src/**/*.py"))


def definition_modules() -> list[Path]:
    return [*sorted(ROOT.glob("services/*/src/*/events.py")), KIT_DEFINITIONS]


def defined_types(paths: Iterable[Path]) -> dict[str, str]:
    """Each event type defined in `paths`, and where: the string members of every StrEnum, and the
    module-level string constants named `*_REVOKED` (the kit's two)."""
    found: dict[str, str] = {}
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(
                _named(base, "StrEnum") for base in node.bases
            ):
                for value, line in _string_assignments(node.body):
                    found[value] = f"{_where(path)}:{line} ({node.name})"
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id.endswith("_REVOKED") for t in node.targets
            ):
                for value, line in _string_assignments([node]):
                    found[value] = f"{_where(path)}:{line}"
    return found


def tabled_types(document: str) -> list[str]:
    """The first column of every row of the table in the events section."""
    section = document.split(f"\n{SECTION}\n", 1)[1].split("\n## ", 1)[0]
    return [match[1] for line in section.splitlines() if (match := ROW.match(line))]


def bare_event_types(paths: Iterable[Path], known: set[str]) -> list[str]:
    """Event types written as string literals outside their definition: any literal given as an
    event type (to `NewEvent`, to `EventStore.append`, compared with an event's `.type`), and
    any literal equal to a known event type wherever it appears (a subject, a tuple of names)."""
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {id(node) for node in _docstrings(tree)}
        for node in ast.walk(tree):
            for literal in _given_as_event_type(node):
                found.append(f"{_where(path)}:{literal.lineno} {literal.value!r}")
            if (
                isinstance(node, ast.Constant)
                and node.value in known
                and id(node) not in docstrings
            ):
                found.append(f"{_where(path)}:{node.lineno} {node.value!r}")
    return sorted(set(found))


def _given_as_event_type(node: ast.AST) -> Iterator[ast.Constant]:
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        # NewEvent(type, data, id); EventStore.append(stream_id, expected_seq, type, data, ...).
        position = {"NewEvent": 0, "append": 2}.get(name)
        if position is not None:
            given = [kw.value for kw in node.keywords if kw.arg == "type"]
            given += node.args[position : position + 1]
            yield from (arg for arg in given if _is_string(arg))
    elif isinstance(node, ast.Compare) and _is_event_type(node.left):
        for comparator in node.comparators:
            elements = (
                comparator.elts
                if isinstance(comparator, ast.Tuple | ast.List | ast.Set)
                else [comparator]
            )
            yield from (element for element in elements if _is_string(element))


def _is_event_type(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "type"


def _is_string(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _named(node: ast.expr, name: str) -> bool:
    return (isinstance(node, ast.Name) and node.id == name) or (
        isinstance(node, ast.Attribute) and node.attr == name
    )


def _string_assignments(body: Iterable[ast.stmt]) -> Iterator[tuple[str, int]]:
    for statement in body:
        if isinstance(statement, ast.Assign) and _is_string(statement.value):
            assert isinstance(statement.value, ast.Constant)
            yield statement.value.value, statement.lineno


def _docstrings(tree: ast.Module) -> Iterator[ast.Constant]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            for statement in node.body:
                if isinstance(statement, ast.Expr) and _is_string(statement.value):
                    assert isinstance(statement.value, ast.Constant)
                    yield statement.value


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


# --- the repository


def test_every_event_type_in_the_code_is_in_the_architecture_table() -> None:
    tabled = set(tabled_types(DOCUMENT.read_text()))

    missing = {
        name: where
        for name, where in defined_types(definition_modules()).items()
        if name not in tabled
    }

    assert missing == {}, f"add these to the table under {SECTION!r} in docs/architecture.md"


def test_the_architecture_table_lists_only_event_types_the_code_defines() -> None:
    defined = defined_types(definition_modules())

    tabled = tabled_types(DOCUMENT.read_text())

    assert [name for name in tabled if name not in defined] == []
    assert len(tabled) == len(set(tabled)), "an event is listed twice"


def test_no_event_type_is_written_as_a_bare_string_outside_its_definition() -> None:
    known = set(defined_types(definition_modules())) | set(tabled_types(DOCUMENT.read_text()))
    elsewhere = [path for path in sources() if path not in definition_modules()]

    assert bare_event_types(elsewhere, known) == []


# --- the checks themselves can fail


def test_the_check_finds_an_enum_member_and_a_kit_constant(tmp_path: Path) -> None:
    # given an events module with a StrEnum and a revocation constant
    module = tmp_path / "events.py"
    module.write_text(
        "from enum import StrEnum\n"
        "class OrderEvent(StrEnum):\n"
        "    PLACED = 'order.placed'\n"
        "CART_REVOKED = 'cart.revoked'\n"
        "OTHER = 'not.an.event'\n"
    )

    # when its event types are read, then both are found, and nothing else
    assert set(defined_types([module])) == {"order.placed", "cart.revoked"}


def test_the_check_reads_the_events_table_only() -> None:
    document = (
        "## Before\n| `not.this` | x |\n"
        f"\n{SECTION}\n| event | publisher |\n|---|---|\n| `order.placed` | orders |\n"
        "\n## After\n| `nor.this` | x |\n"
    )

    assert tabled_types(document) == ["order.placed"]


def test_the_check_finds_event_types_written_as_bare_strings(tmp_path: Path) -> None:
    # given a module that names event types in each of the ways the check looks for
    module = tmp_path / "handlers.py"
    module.write_text(
        '"""A docstring may say order.placed."""\n'
        "async def handle(store, event):\n"
        "    if event.type == 'order.placed':\n"
        "        return NewEvent('order.noted', {})\n"
        "    if event.type in ('order.paid', 'order.cancelled'):\n"
        "        await store.append('s', 0, 'order.settled', {})\n"
        "    return ['shop.orders.x', 'order.shipped']\n"
        "SUBJECT = 'order.placed'\n"
    )

    found = bare_event_types([module], known={"order.placed", "order.shipped"})

    assert found == [
        "handlers.py:3 'order.placed'",
        "handlers.py:4 'order.noted'",
        "handlers.py:5 'order.cancelled'",
        "handlers.py:5 'order.paid'",
        "handlers.py:6 'order.settled'",
        "handlers.py:7 'order.shipped'",
        "handlers.py:8 'order.placed'",
    ]
