"""The GitHub workflows and the Taskfile: actionlint clean and valid against their JSON schemas."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _ok(*argv: str) -> None:
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_the_workflow_is_actionlint_clean_and_follows_the_schema(workflow: Path) -> None:
    _ok(str(ROOT / ".tools" / "bin" / "actionlint"), str(workflow))
    _ok(
        "uv",
        "run",
        "check-jsonschema",
        "--builtin-schema",
        "vendor.github-workflows",
        str(workflow),
    )


def test_the_taskfile_follows_its_schema() -> None:
    _ok("uv", "run", "check-jsonschema", "--builtin-schema", "vendor.taskfile", "Taskfile.yml")
