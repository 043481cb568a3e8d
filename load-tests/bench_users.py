"""Benchmark: GET /api/v1/users/me with a valid token beside a service's bare /healthz, through nginx.

Runs wrk against the running local stack (`./task up`), both endpoints in one run, and prints
requests per second, p50 and p99 latency, and each stack process's peak resident memory.
Usage: ./task bench:users [-- --connections 64 --duration 15]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = "http://127.0.0.1:8080"
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def post(path: str, body: dict[str, str]) -> dict[str, str]:
    request = urllib.request.Request(  # noqa: S310 (a fixed loopback URL)
        GATEWAY + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
        return dict(json.loads(response.read() or b"{}"))


def access_token() -> str:
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    post("/api/v1/auth/register", {"email": email, "password": "bench password", "name": "Bench"})
    return post("/api/v1/auth/login", {"email": email, "password": "bench password"})[
        "access_token"
    ]


def wrk(path: str, connections: int, duration: int, headers: list[str]) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    output = subprocess.run(
        [*command, GATEWAY + path], capture_output=True, text=True, check=True
    ).stdout
    percentiles = {
        p: float(value) * UNITS[unit]
        for p, value, unit in re.findall(
            r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE
        )
    }
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": rps,
        "p50_ms": percentiles["50"],
        "p99_ms": percentiles["99"],
        "errors": float(non_2xx.group(1)) if non_2xx else 0.0,
    }


def peak_memory() -> dict[str, float]:
    pids = json.loads(ROOT.joinpath(".run/pids.json").read_text())
    peaks = {}
    for name, pid in pids.items():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        if match:
            peaks[name] = int(match.group(1)) / 1024
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=15)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: run ./task install")
    token = access_token()
    runs = {
        "GET /api/v1/users/healthz": wrk(
            "/api/v1/users/healthz", args.connections, args.duration, []
        ),
        "GET /api/v1/users/me": wrk(
            "/api/v1/users/me", args.connections, args.duration, [f"Authorization: Bearer {token}"]
        ),
    }
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s through nginx at {GATEWAY}")
    print(f"{'endpoint':32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, figures in runs.items():
        print(
            f"{name:32} {figures['rps']:9.0f} {figures['p50_ms']:8.2f} {figures['p99_ms']:8.2f}"
            f" {figures['errors']:8.0f}"
        )
    ratio = runs["GET /api/v1/users/me"]["rps"] / runs["GET /api/v1/users/healthz"]["rps"]
    print(f"/users/me reaches {ratio:.0%} of /healthz")
    print("peak resident memory (VmHWM):")
    for name, megabytes in sorted(peak_memory().items()):
        print(f"  {name:12} {megabytes:7.1f} MB")


if __name__ == "__main__":
    main()
