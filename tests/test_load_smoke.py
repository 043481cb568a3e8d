"""The Locust suite as a gate: a short run of each scenario that buys, through the gateway, must
fail no request and break no invariant."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import STRIPE_WEBHOOK_SECRET

ROOT = Path(__file__).resolve().parent.parent


# Seeding, a Locust run of seconds, the invariants read back; the platform's start if first.
@pytest.mark.timeout(420)
@pytest.mark.parametrize(
    ("scenario", "users", "seconds"),
    [("steady", 10, 10), ("double-submit", 4, 8), ("webhook-storm", 4, 8), ("flash-sale", 30, 20)],
)
def test_a_short_locust_run_fails_no_request_and_keeps_every_invariant(
    scenario: str,
    users: int,
    seconds: int,
    gateway: str,
    mongo_url: str,
    stripe_recording_url: str,
    service_databases: dict[str, str],
    tmp_path: Path,
) -> None:
    # given the shop behind its gateway, and the Stripe recording proxy payments calls
    databases = ",".join(f"{name}={database}" for name, database in service_databases.items())

    # when Locust runs the scenario for a few seconds (--strict: any failed request fails it)
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "load-tests" / "load.py"),
            scenario,
            str(users),
            str(seconds),
            "--units",
            "20",
            "--strict",
            "--gateway",
            gateway,
            "--mongo-url",
            mongo_url,
            "--stripe-url",
            stripe_recording_url,
            "--webhook-secret",
            STRIPE_WEBHOOK_SECRET,
            "--databases",
            databases,
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    # then it passed, and its summary says so
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    summary = (tmp_path / "summary.md").read_text()
    assert "| FAIL |" not in summary
    assert "failure ratio 0.0000" in summary
    assert (tmp_path / "throughput.png").exists()
    assert (tmp_path / "report.html").exists()
