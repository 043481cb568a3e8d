"""A pytest plugin: the real peers (FerretDB on PostgreSQL, NATS, stripe-mock) started once per run, a
fresh database per test.

Set SHOP_TEST_MONGO_URL, SHOP_TEST_NATS_URL, SHOP_TEST_OPENSEARCH_URL or SHOP_TEST_STRIPE_URL to run
against servers you already have (for example a real MongoDB replica set); otherwise the binaries
installed by `./task install` are started on free loopback ports in a temporary folder
(FERRETDB_BACKEND=sqlite runs FerretDB on SQLite instead).
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from nats.aio.client import Client as NatsClient
from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shopkit import mongo
from shopkit.testing import peers
from shopkit.testing.explain import ExplainedMongo
from shopkit.testing.stripe import StripeProxy

__all__ = [
    "database_name",
    "database_names",
    "db",
    "explained_mongo",
    "mail_server",
    "mongo_client",
    "mongo_peers",
    "mongo_url",
    "nats_client",
    "nats_url",
    "opensearch_url",
    "peers_dir",
    "postgres",
    "serve",
    "service_env",
    "stripe_proxy",
    "stripe_url",
    "twilio_url",
]


# How long a test's setup, call and teardown may take together when it sets no timeout of its own.
DEFAULT_TEST_LIMIT = 300.0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """End the run, printing every thread's stack, when one test outlasts twice its timeout.

    pytest-timeout and pytest's faulthandler_timeout both disarm as soon as a test fails (their
    `pytest_exception_interact` hooks), so a teardown that hangs after a failure (a task left
    running, a client whose pool deadlocked) would otherwise stall the run until CI's limit.
    """
    marker = item.get_closest_marker("timeout")
    try:
        limit = float(marker.args[0] if marker and marker.args else item.config.getini("timeout"))
    except (TypeError, ValueError):  # no pytest-timeout, or no timeout set
        limit = DEFAULT_TEST_LIMIT
    watchdog = threading.Timer(2 * limit if limit > 0 else DEFAULT_TEST_LIMIT, abort, [item])
    watchdog.daemon = True
    watchdog.start()
    try:
        return (yield)
    finally:
        watchdog.cancel()


def abort(item: pytest.Item) -> None:
    capture = item.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=True)
    print(f"\n{item.nodeid} outlasted twice its timeout; every thread's stack:", file=sys.stderr)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    os._exit(1)


@pytest.fixture(scope="session")
def peers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("peers")


@pytest.fixture(scope="session")
def mongo_peers(peers_dir: Path) -> Iterator[list[peers.Peer]]:
    """The processes behind `mongo_url` (none when SHOP_TEST_MONGO_URL names a server)."""
    if os.environ.get("SHOP_TEST_MONGO_URL"):
        yield []
        return
    cluster = peers.mongo(peers_dir, peers.free_port(), durable=False)
    started: list[peers.Peer] = []
    try:
        for peer in cluster:
            started.append(peer.start())
        yield started
    finally:
        for peer in reversed(started):
            peer.stop()


@pytest.fixture(scope="session")
def mongo_url(mongo_peers: list[peers.Peer]) -> str:
    given = os.environ.get("SHOP_TEST_MONGO_URL")
    return given or f"mongodb://127.0.0.1:{mongo_peers[-1].port}/"


@pytest.fixture(scope="session")
def postgres(mongo_peers: list[peers.Peer]) -> peers.Postgres | None:
    """The PostgreSQL cluster under FerretDB, when this run started one."""
    clusters = [peer for peer in mongo_peers if isinstance(peer, peers.Postgres)]
    return clusters[0] if clusters else None


def _given_or_started(
    variable: str, start: Callable[[], peers.Peer], scheme: str = "http"
) -> Iterator[str]:
    """The URL in `variable` when set (a server you already run), else a peer started now and
    stopped at the end."""
    given = os.environ.get(variable)
    if given:
        yield given
        return
    peer = start()
    try:
        yield f"{scheme}://127.0.0.1:{peer.port}"
    finally:
        peer.stop()


@pytest.fixture(scope="session")
def nats_url(peers_dir: Path) -> Iterator[str]:
    yield from _given_or_started(
        "SHOP_TEST_NATS_URL", lambda: peers.nats(peers_dir, peers.free_port()).start(), "nats"
    )


@pytest.fixture(scope="session")
def opensearch_url(peers_dir: Path) -> Iterator[str]:
    """A real OpenSearch node, started on first use (it takes several seconds and 400 MB)."""
    yield from _given_or_started(
        "SHOP_TEST_OPENSEARCH_URL",
        lambda: peers.opensearch(peers_dir, peers.free_port()).start(timeout=180),
    )


@pytest.fixture(scope="session")
def stripe_url(peers_dir: Path) -> Iterator[str]:
    """Stripe's API as stripe-mock serves it, started on first use."""
    yield from _given_or_started(
        "SHOP_TEST_STRIPE_URL", lambda: peers.stripe_mock(peers_dir, peers.free_port()).start()
    )


@dataclass(frozen=True, slots=True)
class MailServer:
    """Mailpit, started once a run: SMTP at `smtp_host:smtp_port`, what arrived at `api_url`."""

    smtp_host: str
    smtp_port: int
    api_url: str


@pytest.fixture(scope="session")
def mail_server(peers_dir: Path) -> Iterator[MailServer]:
    smtp_port, api_port = peers.free_port(), peers.free_port()
    peer = peers.mailpit(peers_dir, smtp_port, api_port).start()
    try:
        yield MailServer("127.0.0.1", smtp_port, f"http://127.0.0.1:{api_port}")
    finally:
        peer.stop()


@pytest.fixture(scope="session")
def twilio_url(peers_dir: Path) -> Iterator[str]:
    """Twilio's API as the peer serves it (Prism on Twilio's own description), started on first
    use: point the `twilio` client's base URL here."""
    peer = peers.twilio(peers_dir, peers.free_port()).start(timeout=60)
    try:
        yield f"http://127.0.0.1:{peer.port}"
    finally:
        peer.stop()


@pytest.fixture
async def stripe_proxy(stripe_url: str) -> AsyncIterator[StripeProxy]:
    """A recording proxy in front of `stripe_url`, fresh for each test: point the SDK at
    `stripe_proxy.url`, count what reached Stripe with `stripe_proxy.reached_stripe(...)`, fail
    the next calls with `stripe_proxy.inject(...)`."""
    async with StripeProxy(stripe_url) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def database_names(mongo_url: str) -> Iterator[set[str]]:
    """Every database name handed out this run; whatever of them a test left is dropped at the end
    (after every app of the run has stopped, so no background loop creates it again)."""
    names: set[str] = set()
    yield names
    client: MongoClient[Any]
    with MongoClient(mongo_url, timeoutMS=30_000) as client:
        for name in set(client.list_database_names()) & names:
            client.drop_database(name)


@pytest.fixture(scope="session")
async def mongo_client(mongo_url: str) -> AsyncIterator[AsyncMongoClient[Any]]:
    client = mongo.client(mongo_url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def database_name(database_names: set[str]) -> str:
    name = "t_" + uuid.uuid4().hex[:16]
    database_names.add(name)
    return name


@pytest.fixture
async def db(
    mongo_client: AsyncMongoClient[Any], database_name: str
) -> AsyncIterator[AsyncDatabase[Any]]:
    """A database no other test has touched, dropped afterwards."""
    database = mongo_client[database_name]
    try:
        yield database
    finally:
        await mongo_client.drop_database(database_name)


@pytest.fixture
async def nats_client(nats_url: str) -> AsyncIterator[NatsClient]:
    connection = await nats.connect(nats_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def service_env(mongo_url: str, nats_url: str, database_name: str) -> dict[str, str]:
    """The environment a service under test reads: this test's database, the shared broker."""
    return {
        "MONGO_URL": mongo_url,
        "MONGO_DATABASE": database_name,
        "NATS_URL": nats_url,
        "LOG_LEVEL": "WARNING",
        "JWT_ISSUER": "https://shop.test",
        "JWT_AUDIENCE": "shop",
    }


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[web.Application], Awaitable[TestClient[Any, Any]]]]:
    """Start an app on a loopback port and give back a client for it; everything stops afterwards."""
    clients: list[TestClient[Any, Any]] = []

    async def start(app: web.Application) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    try:
        yield start
    finally:
        for client in reversed(clients):
            await client.close()


@pytest.fixture(scope="session")
def explained_mongo(peers_dir: Path) -> Iterator[ExplainedMongo]:
    """A FerretDB whose PostgreSQL reports every full scan (see shopkit.testing.explain)."""
    if os.environ.get("SHOP_TEST_MONGO_URL") or peers.backend() is not peers.Backend.POSTGRESQL:
        pytest.skip("the scan check reads PostgreSQL's plans: it needs FerretDB on PostgreSQL")
    server = ExplainedMongo(peers_dir / "explained").start()
    try:
        yield server
    finally:
        server.stop()
