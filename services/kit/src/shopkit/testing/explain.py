"""Which queries a workload ran as full collection scans, from PostgreSQL's own plan of each one.

A FerretDB of its own, on a PostgreSQL cluster that plans with sequential scans disabled (so a scan
in a plan means no index can serve the query, whatever the table's size) and logs the plan of every
statement it runs (`auto_explain`). Tests drive a service through its API against it, then ask
which collections were scanned: a filtered scan is a query no index serves; an unfiltered one is a
read of the whole collection (a range, `$in` or sort, which FerretDB v1 never pushes down).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopkit.testing import peers

__all__ = ["KIT_READ_WHOLE", "ExplainedMongo", "Scan"]

# Everything the cluster runs is planned without sequential scans and logged with its plan.
SETTINGS = {
    "enable_seqscan": "off",
    "shared_preload_libraries": "auto_explain",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_format": "json",
    "auto_explain.log_verbose": "on",
    "logging_collector": "on",
    "log_destination": "jsonlog",
    "log_directory": "log",
    "log_filename": "plans",
    "log_rotation_size": "0",
}
_TABLE_SUFFIX = re.compile(r"_[0-9a-f]{8}$")
# FerretDB's own bookkeeping, read on every command and tiny.
_FERRETDB_TABLES = {"_ferretdb_database_metadata"}
# The kit's collections that may be read whole, and why: each stays small by design (FerretDB v1
# pushes down no range nor sort; MongoDB serves these reads from indexes).
KIT_READ_WHOLE = {
    "events_intents": "appends under way, each deleted when its append ends",
    "leases": "one document per background loop",
}


@dataclass(frozen=True, slots=True)
class Scan:
    """One statement that read a whole table: `filtered` when it had a condition no index served
    (`condition`, with its values, as PostgreSQL planned it)."""

    collection: str
    filtered: bool
    query: str
    condition: str = ""


class ExplainedMongo:
    """The FerretDB and PostgreSQL pair; `url` for the app under test, `scans` afterwards."""

    def __init__(self, state_dir: Path) -> None:
        cluster, self.ferretdb = peers.mongo(
            state_dir,
            peers.free_port(),
            durable=False,
            storage=peers.Backend.POSTGRESQL,
            settings=SETTINGS,
        )
        assert isinstance(cluster, peers.Postgres)
        self.cluster = cluster

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.ferretdb.port}/"

    def start(self) -> ExplainedMongo:
        self.cluster.start()
        try:
            self.ferretdb.start()
        except BaseException:
            self.cluster.stop()
            raise
        return self

    def stop(self) -> None:
        self.ferretdb.stop()
        self.cluster.stop()

    def scans(self, database: str) -> list[Scan]:
        """Every full scan of a collection of `database` so far, in the order they ran."""
        return [
            scan
            for plan in self._plans()
            for scan in _scans(plan["Plan"], database, plan.get("Query Text", ""))
        ]

    def unexpected(
        self, database: str, read_whole: Mapping[str, str] = KIT_READ_WHOLE
    ) -> list[Scan]:
        """The scans of `database` no index could have served, or whole reads of a collection
        that grows: any but those `read_whole` names (collection: why it may be read whole)."""
        return [
            scan
            for scan in self.scans(database)
            if scan.filtered or scan.collection not in read_whole
        ]

    def _plans(self) -> Iterator[dict[str, Any]]:
        """The plans logged so far: up to a marker statement run now, since the logging collector
        writes behind the statements (reading sooner could miss the last ones)."""
        marker = f"shop-explain-marker-{uuid.uuid4().hex}"
        self.cluster.sql(peers.FERRETDB_DATABASE, f"SELECT '{marker}'")
        log = self.cluster.data / "log" / "plans.json"
        deadline = time.monotonic() + 10
        while marker not in (text := log.read_text(errors="replace")):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{log} never logged the marker statement")
            time.sleep(0.02)
        for line in text[: text.index(marker)].splitlines()[:-1]:
            message = json.loads(line).get("message", "")
            _, found, plan = message.partition("plan:\n")
            if found:
                yield json.loads(plan)


def _scans(
    node: dict[str, Any], database: str, query: str, limited: bool = False
) -> Iterator[Scan]:
    """The whole-table reads in a plan; a scan right under a Limit reads only that many rows."""
    if node.get("Node Type") == "Seq Scan" and node.get("Schema") == database and not limited:
        table = node.get("Relation Name", "")
        if table not in _FERRETDB_TABLES:
            condition = node.get("Filter", "")
            yield Scan(_TABLE_SUFFIX.sub("", table), bool(condition), query, condition)
    for child in node.get("Plans", []):
        yield from _scans(child, database, query, node.get("Node Type") == "Limit")
