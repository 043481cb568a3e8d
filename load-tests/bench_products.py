"""Benchmark the seeded catalog through nginx: a product read, a filtered list and a search query, beside
the products service's bare /healthz as the ceiling, all in one run.

Needs `./task up` and `./task seed`. Usage: ./task bench:products [-- --connections 32 --duration 15]
"""

from __future__ import annotations

import argparse
import json
import urllib.request

import wrk


def get(path: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(wrk.GATEWAY + path, timeout=10) as response:  # noqa: S310 (loopback)
        return dict(json.loads(response.read()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=15)
    args = parser.parse_args()
    product = get("/api/v1/search?q=wireless+headphone&limit=1")["items"][0]
    root = next(c for c in get("/api/v1/categories")["items"] if c["parent_id"] is None)
    paths = {
        "GET /api/v1/products/healthz (ceiling)": "/api/v1/products/healthz",
        "GET /api/v1/products/{id}": f"/api/v1/products/{product['id']}",
        "GET /api/v1/products?category&price&sort": (
            f"/api/v1/products?category={root['id']}&min_price=1000&max_price=50000&in_stock=true"
            "&sort=price&limit=20"
        ),
        "GET /api/v1/search?q&brand": "/api/v1/search?q=wireless+headphone&in_stock=true&limit=20",
    }
    results = {name: wrk.run(path, args.connections, args.duration) for name, path in paths.items()}
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration}s through nginx at {wrk.GATEWAY}, seeded catalog"
    )
    print(wrk.HEADER)
    for name, figures in results.items():
        print(figures.row(name))
    ceiling = results["GET /api/v1/products/healthz (ceiling)"].rps
    read = results["GET /api/v1/products/{id}"].rps
    print(f"product read reaches {read / ceiling:.0%} of /healthz")
    print("peak resident memory (VmHWM):")
    for name, megabytes in sorted(wrk.peak_memory().items()):
        print(f"  {name:14} {megabytes:7.1f} MB")


if __name__ == "__main__":
    main()
