"""The Helm chart's copies of the project's files (charts/shop/files/): a chart reads only its own.

`write` (the default) renders the gateway's nginx.conf for Kubernetes and copies compose's run.sh,
the Prometheus rules and the dashboards; `check` exits 1 naming every copy that differs, as the
tests do. `./task new-service` writes them too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

import gateway
import registry

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "shop"
FILES = CHART / "files"
RULES = ROOT / "observability" / "prometheus" / "rules"
DASHBOARDS = ROOT / "dashboards"
GATEWAY_RUN = ROOT / "compose" / "gateway" / "run.sh"


def rendered(
    root: Path = ROOT,
    services: Mapping[str, registry.Service] | None = None,
    planned: Mapping[Path, str] | None = None,
) -> dict[Path, str]:
    """What every file under charts/shop/files/ should hold, by its path under `root`; a source
    in `planned` is read from there (new-service plans before it writes)."""
    planned = planned or {}

    def read(path: Path) -> str:
        return planned[path] if path in planned else path.read_text()

    def sources(folder: Path, pattern: str) -> list[Path]:
        found = set(folder.glob(pattern)) | {
            path for path in planned if path.parent == folder and path.match(pattern)
        }
        return sorted(found)

    files = root / FILES.relative_to(ROOT)
    wanted = {
        files / "gateway" / "nginx.conf": gateway.render_kubernetes(services),
        files / "gateway" / "run.sh": read(root / GATEWAY_RUN.relative_to(ROOT)),
    }
    for rules in sources(root / RULES.relative_to(ROOT), "*.yml"):
        wanted[files / "rules" / rules.name] = read(rules)
    for dashboard in sources(root / DASHBOARDS.relative_to(ROOT), "*.json"):
        wanted[files / "dashboards" / dashboard.name] = read(dashboard)
    return wanted


def stale(wanted: Mapping[Path, str]) -> list[Path]:
    """The copies that differ from what they should hold, missing ones included."""
    return [path for path, text in wanted.items() if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", nargs="?", choices=["write", "check"], default="write")
    args = parser.parse_args(argv)
    wanted = rendered()
    differing = stale(wanted)
    if args.action == "check":
        for path in differing:
            print(
                f"{path.relative_to(ROOT)} differs from its source: run scripts/chart.py",
                file=sys.stderr,
            )
        sys.exit(1 if differing else 0)
    for path in differing:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[path])
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
