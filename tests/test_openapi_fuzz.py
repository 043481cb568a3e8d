"""Schemathesis against each service's public document, through the gateway: the document tells the truth.

For every operation, schema-valid requests are accepted, schema-violating ones refused, no answer is a
5xx, and every answer has a status, a content type and a body the document declares.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import registry  # scripts/, put on sys.path by conftest.py
import requests

from shopkit.settings import read_env_file

ROOT = Path(__file__).resolve().parent.parent
# Small enough that both services run in well under two minutes on a shared two-core machine.
MAX_EXAMPLES = 8
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
)


@pytest.fixture(scope="module")
def admin_token(gateway: str) -> str:
    env = read_env_file(ROOT / ".env.example")
    answer = requests.post(
        f"{gateway}/api/v1/auth/login",
        json={"email": env["ADMIN_EMAIL"], "password": env["ADMIN_PASSWORD"]},
        timeout=10,
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def schemathesis(gateway: str, service: str, token: str, report: Path) -> tuple[int, str]:
    """Run the schemathesis CLI (the pytest loader does not work with pytest 9) on one document."""
    # The pytest plugin's lazy loader sets `Function._nodeid`, which pytest 9 no longer has.
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        f"--config-file={Path(__file__).parent / 'schemathesis.toml'}",
        "run",
        f"{gateway}/api/v1/{service}/openapi.json",
        f"--url={gateway}",
        f"--checks={','.join(CHECKS)}",
        f"--max-examples={MAX_EXAMPLES}",
        "--phases=examples,coverage,fuzzing",
        "--generation-deterministic",
        "--suppress-health-check=all",
        "--workers=1",
        "--request-timeout=10",
        "--no-color",
        # The admin holds every role a route asks for; public routes ignore the token.
        f"--header=Authorization: Bearer {token}",
        "--report=ndjson",
        f"--report-ndjson-path={report}",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "PYTHONPATH": str(Path(__file__).parent),
    }
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
        cwd=report.parent,  # its scratch files go there, not into the work tree
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.timeout(300)
@pytest.mark.parametrize("service", list(registry.load()))
def test_the_api_does_what_its_document_says(
    gateway: str, admin_token: str, service: str, tmp_path: Path
) -> None:
    report = tmp_path / "events.ndjson"
    status, output = schemathesis(gateway, service, admin_token, report)
    print(output)
    assert status == 0, output
    # The run tested something: at least one operation, and no operation failed to generate.
    events = [json.loads(line) for line in report.read_text().splitlines()]
    assert events
