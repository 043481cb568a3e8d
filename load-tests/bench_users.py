"""Benchmark: GET /api/v1/users/me with a valid token beside the users service's bare /healthz, through nginx.

Runs wrk against the running local stack (`./task up`), both endpoints in one run, and prints requests
per second, p50/p95/p99 latency, and each stack process's peak resident memory.
Usage: ./task bench:users [-- --connections 64 --duration 15]
"""

from __future__ import annotations

import argparse
import json
import urllib.request
import uuid

import wrk


def post(path: str, body: dict[str, str]) -> dict[str, str]:
    request = urllib.request.Request(  # noqa: S310 (a fixed loopback URL)
        wrk.GATEWAY + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return dict(json.loads(response.read() or b"{}"))


def access_token() -> str:
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    post("/api/v1/auth/register", {"email": email, "password": "bench password", "name": "Bench"})
    return post("/api/v1/auth/login", {"email": email, "password": "bench password"})[
        "access_token"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=15)
    args = parser.parse_args()
    token = access_token()
    health = wrk.run("/api/v1/users/healthz", args.connections, args.duration)
    me = wrk.run(
        "/api/v1/users/me", args.connections, args.duration, [f"Authorization: Bearer {token}"]
    )
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s through nginx at {wrk.GATEWAY}")
    print(wrk.HEADER)
    print(health.row("GET /api/v1/users/healthz"))
    print(me.row("GET /api/v1/users/me (valid token)"))
    print(f"/users/me reaches {me.rps / health.rps:.0%} of /healthz")
    print("peak resident memory (VmHWM):")
    for name, megabytes in sorted(wrk.peak_memory().items()):
        print(f"  {name:14} {megabytes:7.1f} MB")


if __name__ == "__main__":
    main()
