"""Start, watch and stop the local peer processes (PostgreSQL, FerretDB, NATS, stripe-mock, nginx, services)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path

__all__ = [
    "FERRETDB_DATABASE",
    "Backend",
    "Peer",
    "PeerFailed",
    "Postgres",
    "backend",
    "free_port",
    "mailpit",
    "mongo",
    "nats",
    "opensearch",
    "stop_group",
    "stop_signal",
    "stripe_mock",
    "twilio",
]

BACKEND_VARIABLE = "FERRETDB_BACKEND"
POSTGRES_USER = "postgres"
FERRETDB_DATABASE = "ferretdb"
DUPLICATE_KEY_LOG = '"Code":"23505"'


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
    # Run as this user (PostgreSQL refuses to run as root); None: as ourselves.
    user: str | None = None

    def start(self, timeout: float = 60.0) -> Peer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.prepare()
        with self.log_path.open("ab") as log:
            # A session of its own, so stopping the peer also stops its children (nginx workers).
            self.process = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user else None,
            )
        try:
            self.wait_ready(timeout)
            self.set_up()
        except BaseException:
            self.stop()  # nothing half-started is left running untracked
            raise
        return self

    def prepare(self) -> None:
        """Before the process starts: create what it needs on disk."""

    def set_up(self) -> None:
        """Once it is ready: create what it needs inside (every start, so idempotent)."""

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
        stop_group(self.process.pid, grace, stop_signal(self.name))
        self.process.wait(timeout=5)


def stop_signal(name: str) -> signal.Signals:
    # PostgreSQL's SIGTERM waits for every client to leave; SIGINT rolls them back and stops now.
    return signal.SIGINT if name == "postgres" else signal.SIGTERM


def stop_group(pid: int, grace: float = 25.0, sig: signal.Signals = signal.SIGTERM) -> None:
    """Signal the process group (SIGTERM by default), wait up to `grace` seconds, then SIGKILL it."""
    try:
        os.killpg(pid, sig)
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


class Backend(StrEnum):
    """FerretDB's storage: PostgreSQL (indexed lookups), or SQLite (smallest footprint, scans)."""

    POSTGRESQL = "postgresql"
    SQLITE = "sqlite"


def backend(env: Mapping[str, str] | None = None) -> Backend:
    """FerretDB's storage as `env` (else the process environment) chooses it; PostgreSQL unset."""
    chosen = os.environ.get("FERRETDB_BACKEND") if env is None else env.get(BACKEND_VARIABLE)
    try:
        return Backend(chosen or Backend.POSTGRESQL)
    except ValueError:
        choices = ", ".join(Backend)
        raise PeerFailed(f"{BACKEND_VARIABLE} must be one of {choices}, not {chosen!r}") from None


def mongo(
    state_dir: Path,
    port: int,
    *,
    postgres_port: int | None = None,
    durable: bool = True,
    storage: Backend | None = None,
    settings: Mapping[str, str] | None = None,
) -> list[Peer]:
    """The peers serving the MongoDB wire protocol on `port`, in start order: FerretDB, after the
    PostgreSQL cluster it stores into (on `postgres_port`, a free one by default, with `settings`
    added to its tuning) unless the backend (`storage`, else FERRETDB_BACKEND) is SQLite.

    `durable=False` (tests, benchmarks) trades crash safety for speed (no fsync), and the cluster
    is deleted when it stops.
    """
    if (storage or backend()) is Backend.SQLITE:
        sqlite = f"--sqlite-url=file:{_folder(state_dir / 'ferretdb')}/"
        return [ferretdb(state_dir, port, Backend.SQLITE, sqlite)]
    cluster = Postgres.at(
        state_dir, postgres_port or free_port(), durable=durable, settings=settings
    )
    return [
        cluster,
        ferretdb(state_dir, port, Backend.POSTGRESQL, f"--postgresql-url={cluster.url}"),
    ]


def ferretdb(state_dir: Path, port: int, storage: Backend, storage_flag: str) -> Peer:
    command = [
        require_binary("ferretdb"),
        f"--handler={storage}",
        storage_flag,
        f"--listen-addr=127.0.0.1:{port}",
        "--debug-addr=-",
        "--telemetry=disable",
        f"--state-dir={_folder(state_dir / 'ferretdb')}",
        # Its warnings are 18-line dumps of each reply to PyMongo's `endSessions` at every client
        # close, a command FerretDB v1 does not know: errors only.
        "--log-level=error",
    ]
    # On PostgreSQL, FerretDB logs every duplicate key (SQLSTATE 23505) at ERROR, and duplicate
    # keys are how this design detects a lost race, hundreds per test run: keep them out of the
    # log (the client still gets each one as error 11000). The filter ignores SIGTERM, so it
    # passes FerretDB's last lines on and ends when FerretDB does.
    grep = f"grep --line-buffered -v -F {shlex.quote(DUPLICATE_KEY_LOG)}"
    filtered = ["sh", "-c", f"\"$@\" 2>&1 | (trap '' TERM; exec {grep})", "sh"]
    return Peer(
        name="ferretdb",
        argv=filtered + command,
        log_path=state_dir / "logs" / "ferretdb.log",
        port=port,
    )


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def postgres_bin() -> Path:
    """The binaries of the newest PostgreSQL installed from Debian's packages (off the PATH)."""
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda path: int(path.parts[-3])
    )
    if not installed:
        raise PeerFailed("PostgreSQL is not installed (/usr/lib/postgresql): run ./task install")
    return installed[-1].parent


@dataclass(slots=True)
class Postgres(Peer):
    """A project-local PostgreSQL cluster on 127.0.0.1, tuned for FerretDB (see gin_twins.sql).

    An ephemeral cluster (tests, benchmarks) lives in a fresh temporary folder and is deleted
    when it stops; a durable one (the stack) keeps its data under the state folder.
    """

    data: Path = Path()
    ephemeral: bool = False

    @classmethod
    def at(
        cls,
        state_dir: Path,
        port: int,
        *,
        durable: bool = True,
        settings: Mapping[str, str] | None = None,
    ) -> Postgres:
        """The cluster of `state_dir`; `settings` adds to or overrides the tuning below."""
        user = POSTGRES_USER if os.geteuid() == 0 else None
        tuning = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": "",
            # The field name FerretDB passes as a parameter must be a constant when planning, or
            # no expression index matches: a generic plan scans every collection.
            "plan_cache_mode": "force_custom_plan",
            # Small: about 40 MB (PSS) with FerretDB's connections open.
            "shared_buffers": "32MB",
            "max_wal_size": "256MB",
            "max_connections": "200",
            # FerretDB is the only client, and its own log has every SQL error it meets but the
            # duplicate keys, the design's conflict signal: this log keeps LOG, FATAL and PANIC.
            "log_min_messages": "log",
            "log_min_error_statement": "panic",
            "log_checkpoints": "off",
        }
        if not durable:
            tuning |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        tuning |= settings or {}
        data = _cluster_folder(state_dir, user, durable)
        argv = [str(postgres_bin() / "postgres"), "-D", str(data)]
        for name, value in tuning.items():
            argv += ["-c", f"{name}={value}"]
        return cls(
            name="postgres",
            argv=argv,
            log_path=state_dir / "logs" / "postgres.log",
            port=port,
            user=user,
            data=data,
            ephemeral=not durable,
        )

    @property
    def url(self) -> str:
        return f"postgres://{self.role}@127.0.0.1:{self.port}/{FERRETDB_DATABASE}"

    @property
    def role(self) -> str:
        return self.user or pwd.getpwuid(os.geteuid()).pw_name

    def prepare(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        # Into a sibling folder renamed when done: an interrupted initdb leaves no half cluster.
        fresh = self.data.with_name(self.data.name + ".initdb")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(mode=0o700, parents=True)
        if self.user is not None:
            shutil.chown(fresh, self.user, self.user)
        # -N: no fsync of the fresh cluster (1 s instead of 9); trust: it listens on loopback only.
        self._run(
            [
                *(str(postgres_bin() / "initdb"), "-D", str(fresh), "-U", self.role, "-A", "trust"),
                *("-N", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"),
            ]
        )
        fresh.rename(self.data)

    def ready(self) -> bool:
        # From the cluster's own pid file, not the port: another server answering on that port
        # must not pass for this one. Its last line turns "ready" once it accepts connections.
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        ours = self.process is None or lines[:1] == [str(self.process.pid)]
        return ours and len(lines) >= 8 and lines[7].strip() == "ready"

    def set_up(self) -> None:
        query = f"SELECT 1 FROM pg_database WHERE datname = '{FERRETDB_DATABASE}'"  # noqa: S608
        if not self.sql("postgres", query).strip():
            self.sql("postgres", f"CREATE DATABASE {FERRETDB_DATABASE}")
        twins = resources.files("shopkit.testing").joinpath("sql/gin_twins.sql").read_text()
        self.sql(FERRETDB_DATABASE, twins)

    def stop(self, grace: float = 25.0) -> None:
        Peer.stop(self, grace)
        if self.ephemeral:
            shutil.rmtree(self.data.parent, ignore_errors=True)

    def sql(self, database: str, script: str) -> str:
        """Run SQL as the cluster's superuser; its output, unaligned."""
        return self._run(
            [
                *(str(postgres_bin() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"),
                *("-h", "127.0.0.1", "-p", str(self.port), "-U", self.role, "-d", database),
            ],
            script,
        )

    def _run(self, argv: list[str], stdin: str = "") -> str:
        done = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            user=self.user,
            group=self.user,
            extra_groups=[] if self.user else None,
            cwd="/",
            env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"},
            check=False,
        )
        if done.returncode != 0:
            raise PeerFailed(f"{argv[0]} failed: {done.stderr.strip()}")
        return done.stdout


def _cluster_folder(state_dir: Path, user: str | None, durable: bool) -> Path:
    """Where a cluster keeps its data: in a fresh temporary folder when ephemeral; else under
    `state_dir`, or, when the server runs as `user` (we are root) and that user cannot enter
    `state_dir`, in that user's home, named after `state_dir`."""
    if not durable:
        # mkdtemp: a name no one can guess or plant beforehand, private to the server's user.
        fresh = Path(tempfile.mkdtemp(prefix="shop-postgres-"))
        if user is not None:
            shutil.chown(fresh, user, user)
        return fresh / "data"
    state = _folder(state_dir)
    if user is None or _reachable_by(user, state):
        return state / "postgres"
    home = Path(_account(user).pw_dir)
    return home / f"shop-{hashlib.sha256(str(state).encode()).hexdigest()[:12]}"


def _reachable_by(user: str, folder: Path) -> bool:
    _account(user)
    probe = subprocess.run(["test", "-x", str(folder)], user=user, check=False, cwd="/")
    return probe.returncode == 0


def _account(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise PeerFailed(f"there is no {user} user: run ./task install") from None


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
        argv=[
            require_binary("shop-search-node"),
            str(home.resolve()),
            str(port),
            # Answer `GET /` as Elasticsearch 7.10.2 would: Filebeat 7.10 (tests/test_logs_pipeline.py)
            # ships only to a server that says so.
            "compatibility.override_main_response_version=true",
        ],
        log_path=state_dir / "logs" / "opensearch.log",
        env={"SEARCH_JAVA_OPTS": "-Xms512m -Xmx512m -XX:+UseSerialGC"},
        port=port,
        ready_url=f"http://127.0.0.1:{port}/_cluster/health?wait_for_status=yellow&timeout=1s",
    )


def stripe_mock(state_dir: Path, port: int) -> Peer:
    """stripe-mock (built by scripts/install.sh): Stripe's API answered from its OpenAPI spec,
    keeping no state; it listens only once the spec is loaded, so an open port means ready."""
    return Peer(
        name="stripe-mock",
        # It also serves HTTPS, on :12112 of every interface unless told otherwise, and exits
        # when that port is taken (by another run's stripe-mock): a port of the system's choosing.
        argv=[
            require_binary("stripe-mock"),
            "-http-addr",
            f"127.0.0.1:{port}",
            "-https-addr",
            "127.0.0.1:",
        ],
        log_path=state_dir / "logs" / "stripe-mock.log",
        port=port,
    )


def stripe_proxy(state_dir: Path, port: int, upstream: str) -> Peer:
    """The recording, fault-injecting proxy (`shopkit.testing.stripe`) in front of `upstream`
    (stripe-mock) as a process of its own: what reached Stripe is read back, and faults are
    switched, over HTTP at `/_proxy/`."""
    return Peer(
        name="stripe-proxy",
        argv=[
            sys.executable,
            "-m",
            "shopkit.testing.stripe",
            "--upstream",
            upstream,
            "--port",
            str(port),
        ],
        log_path=state_dir / "logs" / "stripe-proxy.log",
        port=port,
        ready_url=f"http://127.0.0.1:{port}/_proxy/requests?from=0",
    )


def mailpit(state_dir: Path, smtp_port: int, api_port: int) -> Peer:
    """Mailpit (built by scripts/install.sh): an SMTP server on `smtp_port` whose REST API on
    `api_port` reads back what arrived (`/api/v1/messages`, `/api/v1/message/{id}`,
    `/api/v1/search`). Any login is accepted, over plain SMTP too, as a test relay should."""
    return Peer(
        name="mailpit",
        argv=[
            require_binary("mailpit"),
            "--smtp",
            f"127.0.0.1:{smtp_port}",
            "--listen",
            f"127.0.0.1:{api_port}",
            "--disable-version-check",
            "--smtp-auth-accept-any",
            "--smtp-auth-allow-insecure",
            # Keep every message (the default keeps 500): a campaign sends thousands.
            "--max",
            "0",
        ],
        log_path=state_dir / "logs" / "mailpit.log",
        port=smtp_port,
        ready_url=f"http://127.0.0.1:{api_port}/api/v1/messages",
    )


def twilio(state_dir: Path, port: int) -> Peer:
    """The Twilio API peer (installed by scripts/install.sh): Prism serving Twilio's own OpenAPI
    description of the 2010-04-01 API, which answers 422 to a request the real API would refuse
    (a message without `To`, say) and a fixture for a valid one, behind Twilio's test phone
    numbers (`shopkit.testing.twilio_numbers`). No state: nothing is sent."""
    return Peer(
        name="twilio",
        argv=[
            sys.executable,
            "-m",
            "shopkit.testing.twilio_numbers",
            str(port),
            require_binary("shop-twilio-peer"),
        ],
        log_path=state_dir / "logs" / "twilio.log",
        port=port,
    )
