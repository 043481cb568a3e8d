"""A load run's figures as Locust left them, its summary table and its plots."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from invariants import Verdict


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float


@dataclass(frozen=True, slots=True)
class Figures:
    """Per endpoint, then "Aggregated"; and the errors that were no failed request."""

    rows: tuple[Row, ...]
    errors: tuple[str, ...]

    @property
    def total(self) -> Row:
        return next(row for row in self.rows if row.name == "Aggregated")


def read(out: Path) -> Figures:
    """What the locustfile wrote as Locust quit (figures.json)."""
    written = json.loads((out / "figures.json").read_text())
    return Figures(
        tuple(
            Row(r["name"], r["requests"], r["failures"], r["rps"], r["p50"], r["p95"], r["p99"])
            for r in written["rows"]
        ),
        tuple(written["errors"]),
    )


def failures_by_second(out: Path) -> list[tuple[float, int]]:
    """(Unix second, failures so far) over the run, from Locust's per-second history."""
    with (out / "locust_stats_history.csv").open() as stats:
        return [
            (float(row["Timestamp"]), int(row["Total Failure Count"]))
            for row in csv.DictReader(stats)
            if row["Name"] == "Aggregated"
        ]


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def summary(
    title: str,
    figures: Figures,
    verdicts: Sequence[Verdict],
    generator_cpu: float,
    seconds: float,
    notes: Sequence[str] = (),
) -> str:
    """The table printed at the end of a run (Markdown, so it pastes into a report)."""
    total = figures.total
    ratio = total.failures / total.requests if total.requests else 0.0
    lines = [
        f"## {title}",
        "",
        f"{total.requests} requests, {total.rps:.1f}/s, failure ratio {ratio:.4f}, "
        f"{len(figures.errors)} errors; generator CPU {generator_cpu:.1f} s in {seconds:.0f} s "
        f"({100 * generator_cpu / max(seconds, 1e-9):.0f}% of one core)",
        "",
        "| endpoint | requests | failed | req/s | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in figures.rows:
        lines.append(
            f"| {row.name} | {row.requests} | {row.failures} | {row.rps:.1f} | {row.p50:.0f} "
            f"| {row.p95:.0f} | {row.p99:.0f} |"
        )
    lines += ["", "| invariant | result | detail |", "|---|---|---|"]
    for verdict in verdicts:
        outcome = "pass" if verdict.passed else "FAIL"
        lines.append(f"| {verdict.name} | {outcome} | {verdict.detail} |")
    lines += [f"\nerror: {error}" for error in figures.errors[:5]]
    lines += list(notes)
    return "\n".join(lines) + "\n"


def plot(out: Path, title: str, marks: Sequence[tuple[float, float, str]] = ()) -> None:
    """throughput.png and latency.png from Locust's per-second history; `marks` (seconds from
    the start, and a label: a fault's window) shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with (out / "locust_stats_history.csv").open() as stats:
        history = [row for row in csv.DictReader(stats) if row["Name"] == "Aggregated"]
    if not history:
        return
    start = int(history[0]["Timestamp"])
    seconds = [int(row["Timestamp"]) - start for row in history]

    def series(column: str) -> list[float]:
        return [float(row[column]) if row[column] not in ("", "N/A") else 0.0 for row in history]

    charts: Mapping[str, tuple[str, Mapping[str, list[float]]]] = {
        "throughput.png": (
            "requests per second",
            {"requests/s": series("Requests/s"), "failures/s": series("Failures/s")},
        ),
        "latency.png": (
            "latency (ms)",
            {"p50": series("50%"), "p95": series("95%"), "p99": series("99%")},
        ),
    }
    for name, (label, lines) in charts.items():
        figure, axes = plt.subplots(figsize=(9, 3.5))
        for legend, values in lines.items():
            axes.plot(seconds, values, label=legend)
        for begin, end, what in marks:
            axes.axvspan(begin, end, color="tab:red", alpha=0.15)
            axes.annotate(what, (begin, axes.get_ylim()[1] * 0.92), fontsize=8)
        axes.set_title(f"{title}: {label}", fontsize=10)
        axes.set_xlabel("seconds")
        axes.set_ylabel(label)
        axes.legend(loc="upper right")
        axes.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(out / name, dpi=90)
        plt.close(figure)
