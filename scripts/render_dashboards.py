"""Draw each dashboard's panels from a real Prometheus into a PNG, for readers without a Grafana.

`uv run python scripts/render_dashboards.py --prometheus http://127.0.0.1:9090 --minutes 10`
asks Prometheus (query_range) for every query of dashboards/*.json over the last minutes and
draws each panel in the dashboard's grid into dashboards/png/<dashboard>.png.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
GRID_COLUMNS = 24  # Grafana's grid: 24 columns; a height unit is 30 px


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    minutes: list[float]  # before the end of the window: -10.0 … 0.0
    values: list[float]


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[Any]:
    """The matrix Prometheus answers for `expr` (an error answer raises)."""
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    url = f"{prometheus.rstrip('/')}/api/v1/query_range?{query}"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (an http URL we are given)
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body.get('error')}")
    result: list[Any] = body["data"]["result"]
    return result


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's legend format: `{{label}}` replaced by the series' value of it."""
    return LEGEND.sub(lambda found: labels.get(found.group(1), ""), template).strip() or "value"


def series_of(
    prometheus: str, panel: dict[str, Any], start: float, end: float, step: float
) -> list[Series]:
    found = []
    for target in panel["targets"]:
        for each in query_range(prometheus, target["expr"], start, end, step):
            points = [(float(at), float(value)) for at, value in each["values"]]
            found.append(
                Series(
                    legend(target.get("legendFormat", ""), each["metric"]),
                    [(at - end) / 60 for at, _ in points],
                    [value for _, value in points],
                )
            )
    return found


def scaled(unit: str, values: list[float]) -> list[float]:
    # A share reads as a percentage, as Grafana's `percentunit` shows it.
    return [value * 100 for value in values] if unit == "percentunit" else values


UNIT_LABELS = {"percentunit": "%", "s": "seconds", "reqps": "requests/s"}


def draw(dashboard: dict[str, Any], prometheus: str, minutes: float, out: Path) -> Path:
    """One PNG of the dashboard's panels, placed as its gridPos places them."""
    end = time.time()
    start = end - minutes * 60
    step = max(1.0, minutes * 60 / 300)
    panels = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    figure = Figure(figsize=(16, rows * 0.4 + 1), dpi=80)
    figure.subplots_adjust(left=0.05, right=0.98, top=1 - 0.8 / (rows * 0.4 + 1), bottom=0.02)
    grid = figure.add_gridspec(rows, GRID_COLUMNS, hspace=0, wspace=0)
    for panel in panels:
        place = panel["gridPos"]
        # A grid row above each panel for its title, two below for its ticks, one column aside.
        axes = figure.add_subplot(
            grid[
                place["y"] + 1 : place["y"] + place["h"] - 2,
                place["x"] + 1 : place["x"] + place["w"] - 1,
            ]
        )
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        drawn = 0
        for series in series_of(prometheus, panel, start, end, step):
            values = scaled(unit, series.values)
            if all(math.isnan(value) for value in values):
                continue
            axes.plot(series.minutes, values, label=series.label, linewidth=1.2)
            drawn += 1
        axes.set_title(panel["title"], fontsize=10, loc="left")
        axes.set_ylabel(UNIT_LABELS.get(unit, ""), fontsize=8)
        axes.tick_params(labelsize=7)
        axes.set_xlim(-minutes, 0)
        axes.set_xlabel("minutes before the end", fontsize=7, labelpad=1)
        axes.grid(alpha=0.3)
        if drawn == 0:
            axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
        elif drawn <= 8:
            axes.legend(fontsize=7, loc="upper left")
    ended = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(end))
    figure.suptitle(f"{dashboard['title']} ({minutes:.1f} minutes to {ended})", fontsize=13)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{dashboard['uid'].removeprefix('shop-')}.png"
    figure.savefig(path)
    return path


def render_all(prometheus: str, minutes: float, out: Path, folder: Path = DASHBOARDS) -> list[Path]:
    return [
        draw(json.loads(path.read_text(encoding="utf-8")), prometheus, minutes, out)
        for path in sorted(folder.glob("*.json"))
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="its base URL")
    parser.add_argument("--minutes", type=float, default=10.0, help="how far back to draw")
    parser.add_argument("--out", type=Path, default=DASHBOARDS / "png", help="where PNGs go")
    args = parser.parse_args(argv)
    for path in render_all(args.prometheus, args.minutes, args.out):
        print(path)


if __name__ == "__main__":
    main()
