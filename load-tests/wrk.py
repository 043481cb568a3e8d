"""Run wrk against the local gateway and read back requests per second and latency percentiles."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

GATEWAY = "http://127.0.0.1:8080"
ROOT = Path(__file__).resolve().parents[1]
# wrk's Lua `done` hook prints exact percentiles (its --latency table has no p95).
REPORT = """
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %d, "seconds": %f, "non2xx": %d, "errors": %d,'
    .. ' "p50": %d, "p95": %d, "p99": %d}\\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


@dataclass(frozen=True, slots=True)
class Figures:
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    failures: int

    def row(self, name: str) -> str:
        return f"{name:44} {self.rps:9.0f} {self.p50_ms:8.2f} {self.p95_ms:8.2f} {self.p99_ms:8.2f} {self.failures:8d}"


HEADER = f"{'endpoint':44} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'failed':>8}"


def run(
    path: str,
    connections: int,
    duration: int,
    headers: list[str] | None = None,
    lua: str = "",
) -> Figures:
    """`lua` may define wrk's `request` (or `init`) to vary what each request sends."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: run ./task install")
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua + REPORT)
        script.flush()
        # One wrk thread: on two cores, a second one would take CPU from what we measure.
        command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", script.name]
        for header in headers or []:
            command += ["-H", header]
        output = subprocess.run(
            [*command, GATEWAY + path], capture_output=True, text=True, check=True
        ).stdout
    report = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    return Figures(
        rps=report["requests"] / report["seconds"],
        p50_ms=report["p50"] / 1000,
        p95_ms=report["p95"] / 1000,
        p99_ms=report["p99"] / 1000,
        failures=report["non2xx"] + report["errors"],
    )


def peak_memory() -> dict[str, float]:
    """Peak resident memory (VmHWM) of each process of the local stack, in MB."""
    pids = json.loads(ROOT.joinpath(".run/pids.json").read_text())
    peaks = {}
    for name, pid in pids.items():
        try:
            match = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
        except OSError:
            continue
        if match:
            peaks[name] = int(match.group(1)) / 1024
    return peaks
