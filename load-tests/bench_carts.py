"""Benchmark carts through nginx on the seeded catalog: cart reads and add-to-cart, beside /healthz.

Signs up `--shoppers` accounts (bcrypt: about half a second each), gives each a cart of three lines
from the seeded catalog, then measures, in one run: carts' bare /healthz through nginx (the
ceiling), a shopper reading their cart, and a shopper adding one unit of one of `--skus` SKUs (each
request a random shopper and SKU, so carts stay realistic: at most `--skus` lines). Ends with each
carts process's peak resident memory.

Needs `./task up` and `./task seed`. Usage: ./task bench:carts [-- --connections 32 --duration 15]
"""

from __future__ import annotations

import argparse
import json
import random
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import wrk

CART = "/api/v1/carts/current"


def call(method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(wrk.GATEWAY + path, data, headers, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
        raw = response.read()
        return json.loads(raw) if raw else None


def shopper(index: int) -> str:
    """A new account, signed in: its access token."""
    credentials = {
        "email": f"bench-{uuid.uuid4().hex[:10]}@example.com",
        "password": "bench password " + str(index),
    }
    call("POST", "/api/v1/auth/register", {**credentials, "name": f"Bench {index}"})
    return str(call("POST", "/api/v1/auth/login", credentials)["access_token"])


def in_stock_skus(count: int) -> list[str]:
    """`count` SKUs of the seeded catalog with at least 100 units available (the most one line
    reaches in a run is about requests / shoppers / SKUs)."""
    found: list[str] = []
    page = call("GET", "/api/v1/products?limit=100")
    candidates = [v["sku"] for p in page["items"] for v in p.get("variants", [])]
    for start in range(0, len(candidates), 100):
        batch = ",".join(candidates[start : start + 100])
        lookup = call("GET", f"/api/v1/products/skus?skus={batch}")
        found += [
            i["sku"] for i in lookup["items"] if i["available"] is None or i["available"] >= 100
        ]
    if len(found) < count:
        raise SystemExit(f"the catalog has {len(found)} SKUs with 100 units; run ./task seed")
    return found[:count]


def lua_table(values: list[str]) -> str:
    return "{" + ",".join(json.dumps(value) for value in values) + "}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--shoppers", type=int, default=64)
    parser.add_argument("--skus", type=int, default=10)
    args = parser.parse_args()

    skus = in_stock_skus(args.skus)
    with ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(shopper, range(args.shoppers)))
    for token in tokens:
        for sku in random.sample(skus, 3):
            call("POST", f"{CART}/lines", {"sku": sku, "quantity": 1}, token)

    pick = f"tokens = {lua_table(tokens)}\nskus = {lua_table(skus)}\n"
    read = pick + (
        "request = function()\n"
        "  local token = tokens[math.random(#tokens)]\n"
        f'  return wrk.format("GET", "{CART}", {{Authorization = "Bearer " .. token}})\n'
        "end\n"
    )
    add = pick + (
        "request = function()\n"
        "  local token = tokens[math.random(#tokens)]\n"
        "  local sku = skus[math.random(#skus)]\n"
        '  local body = \'{"sku": "\' .. sku .. \'", "quantity": 1}\'\n'
        f'  return wrk.format("POST", "{CART}/lines", '
        '{Authorization = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)\n'
        "end\n"
    )
    runs = {
        "GET /api/v1/carts/healthz (ceiling)": ("/api/v1/carts/healthz", ""),
        "GET /api/v1/carts/current (3-10 lines)": (CART, read),
        "POST /api/v1/carts/current/lines": (f"{CART}/lines", add),
    }
    results = {
        name: wrk.run(path, args.connections, args.duration, lua=lua)
        for name, (path, lua) in runs.items()
    }
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration}s through nginx at {wrk.GATEWAY}, "
        f"{args.shoppers} signed-in shoppers, {args.skus} seeded SKUs"
    )
    print(wrk.HEADER)
    for name, figures in results.items():
        print(figures.row(name))
    ceiling = results["GET /api/v1/carts/healthz (ceiling)"].rps
    read_rps = results["GET /api/v1/carts/current (3-10 lines)"].rps
    print(f"cart read reaches {read_rps / ceiling:.0%} of /healthz")
    print("peak resident memory (VmHWM):")
    for name, megabytes in sorted(wrk.peak_memory().items()):
        if name.startswith("carts"):
            print(f"  {name:14} {megabytes:7.1f} MB")


if __name__ == "__main__":
    main()
