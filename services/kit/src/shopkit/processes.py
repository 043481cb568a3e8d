"""Start, watch and stop the local peer processes (FerretDB, NATS, nginx, services) on loopback."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class PeerFailed(RuntimeError):
    """A peer process exited or never became ready."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback only)
            return bool(200 <= response.status < 300)
    except OSError:
        return False


def require_binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PeerFailed(
            f"{name} is not installed: run ./task install (it puts tools in .tools/bin)"
        )
    return found


@dataclass(slots=True)
class Peer:
    """One process started by us, with its log file and a readiness probe."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    port: int | None = None
    ready_url: str | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Peer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # A session of its own, so stopping the peer also stops its children (nginx workers).
            self.process = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        self.wait_ready(timeout)
        return self

    def ready(self) -> bool:
        if self.ready_url is not None:
            return http_ok(self.ready_url)
        return self.port is not None and port_open(self.port)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise PeerFailed(
                    f"{self.name} exited with {self.process.returncode}: {self.tail()}"
                )
            if self.ready():
                return
            time.sleep(0.05)
        self.stop()
        raise PeerFailed(f"{self.name} was not ready after {timeout:.0f}s: {self.tail()}")

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 25.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        stop_group(self.process.pid, grace)
        self.process.wait(timeout=5)


def stop_group(pid: int, grace: float = 25.0) -> None:
    """SIGTERM the process group, wait up to `grace` seconds, then SIGKILL it."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        if _is_zombie(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return True


def ferretdb(state_dir: Path, port: int) -> Peer:
    data = state_dir / "ferretdb"
    data.mkdir(parents=True, exist_ok=True)
    return Peer(
        name="ferretdb",
        argv=[
            require_binary("ferretdb"),
            "--handler=sqlite",
            f"--sqlite-url=file:{data.resolve()}/",
            f"--listen-addr=127.0.0.1:{port}",
            "--debug-addr=-",
            "--telemetry=disable",
            f"--state-dir={data.resolve()}",
            "--log-level=warn",
        ],
        log_path=state_dir / "logs" / "ferretdb.log",
        port=port,
    )


def nats(state_dir: Path, port: int) -> Peer:
    data = state_dir / "nats"
    data.mkdir(parents=True, exist_ok=True)
    return Peer(
        name="nats",
        argv=[
            require_binary("nats-server"),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-js",
            "-sd",
            str(data),
        ],
        log_path=state_dir / "logs" / "nats.log",
        port=port,
    )


def opensearch(state_dir: Path, port: int) -> Peer:
    """Single-node OpenSearch 2.19 (tools/opensearch, built by scripts/install-opensearch.sh)."""
    home = state_dir / "opensearch"
    home.mkdir(parents=True, exist_ok=True)
    return Peer(
        name="opensearch",
        argv=[require_binary("shop-search-node"), str(home.resolve()), str(port)],
        log_path=state_dir / "logs" / "opensearch.log",
        env={"SEARCH_JAVA_OPTS": "-Xms512m -Xmx512m -XX:+UseSerialGC"},
        port=port,
        ready_url=f"http://127.0.0.1:{port}/_cluster/health?wait_for_status=yellow&timeout=1s",
    )
