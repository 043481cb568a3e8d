"""The peers a benchmark starts for itself, on free loopback ports in a temporary folder."""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path

from shopkit.testing import peers


def database_and_broker(
    stack: ExitStack, mongo_url: str | None, nats_url: str | None
) -> tuple[str, str]:
    """The MongoDB and NATS URLs to use: those given, else FerretDB (with its PostgreSQL, unless
    FERRETDB_BACKEND=sqlite) and NATS started here, stopped when `stack` closes."""
    state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
    if not mongo_url:
        database = peers.mongo(state, peers.free_port(), durable=False)
        for peer in database:
            stack.callback(peer.start().stop)
        mongo_url = f"mongodb://127.0.0.1:{database[-1].port}/"
    if not nats_url:
        broker = peers.nats(state, peers.free_port()).start()
        stack.callback(broker.stop)
        nats_url = f"nats://127.0.0.1:{broker.port}"
    return mongo_url, nats_url
