"""End-to-end fixtures: the services as real processes behind the real nginx gateway."""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import aiohttp
import pytest
from e2e_support import (
    NOTIFICATIONS_CLIENT_SECRET,
    ORDERS_CLIENT_SECRET,
    STRIPE_WEBHOOK_SECRET,
    run_instances,
)

from shopkit.testing.peers import Peer, free_port
from shopkit.testing.peers import stripe_proxy as stripe_proxy_peer
from shopkit.testing.plugin import MailServer

ROOT = Path(__file__).resolve().parent.parent
# The gateway renderer and the stack live in scripts/, which is not a package.
sys.path.insert(0, str(ROOT / "scripts"))
import gateway as gateway_config  # noqa: E402
import registry  # noqa: E402

Upstreams = Mapping[str, Sequence[str]]


class StartGateway(Protocol):
    def __call__(
        self,
        upstreams: Upstreams,
        routes: Sequence[gateway_config.Route] | None = None,
        internal_port: int | None = None,
    ) -> str: ...


@pytest.fixture(scope="session")
def services() -> dict[str, registry.Service]:
    """The services of services/registry.toml: how many instances of each to run."""
    return registry.load()


@pytest.fixture(scope="session")
def start_instances(
    database_names: set[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., list[str]]]:
    """`start(name, env, count, argv=None)`: run_instances for a test module's own service; the
    addresses of its instances. All stop at the end."""
    with contextlib.ExitStack() as running:

        def start(
            name: str, env: Mapping[str, str], count: int, argv: Sequence[str] | None = None
        ) -> list[str]:
            logs = tmp_path_factory.mktemp(name)
            instances = run_instances(name, env, logs, database_names, count, argv)
            addresses = next(instances)
            running.callback(instances.close)  # the generator's `finally` stops the processes
            return addresses

        yield start


@pytest.fixture(scope="session")
def service_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each instance of the shop's services writes its log lines (`<name>-<n>.log`): what
    the logs pipeline test ships with Filebeat."""
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="session")
def service_databases() -> dict[str, str]:
    """Each service's database, named as its instances start: where tests that read the shop's
    data behind its API (the load smoke test's invariants) look."""
    return {}


@pytest.fixture(scope="session")
def internal_port() -> int:
    """The port of the gateway's internal listener, chosen before the services start: those that
    call other services (carts, orders) are given its address, as .env.example gives them :8090."""
    return free_port()


@pytest.fixture(scope="session")
def internal_url(internal_port: int) -> str:
    """The internal listener's base URL (served once the `gateway` fixture has started nginx)."""
    return f"http://127.0.0.1:{internal_port}"


class RunService(Protocol):
    def __call__(self, name: str, env: Mapping[str, str]) -> Iterator[list[str]]: ...


@pytest.fixture(scope="session")
def run_service(
    services: dict[str, registry.Service],
    mongo_url: str,
    nats_url: str,
    database_names: set[str],
    service_logs: Path,
    service_databases: dict[str, str],
) -> RunService:
    """`yield from run_service(name, env)` in a session fixture: the shop's service `name`, as
    many instances as the registry says, on the session's MongoDB and NATS, with `env` besides."""

    def run(name: str, env: Mapping[str, str]) -> Iterator[list[str]]:
        return run_instances(
            name,
            {"MONGO_URL": mongo_url, "NATS_URL": nats_url, **env},
            service_logs,
            database_names,
            services[name].instances,
            databases=service_databases,
        )

    return run


def _jwks(users_instances: list[str]) -> str:
    # Straight to a users instance: the gateway starts after the services it routes to.
    return f"http://{users_instances[0]}/api/v1/auth/jwks"


@pytest.fixture(scope="session")
def users_instances(run_service: RunService) -> Iterator[list[str]]:
    clients = f"orders:{ORDERS_CLIENT_SECRET},notifications:{NOTIFICATIONS_CLIENT_SECRET}"
    yield from run_service("users", {"SERVICE_CLIENTS": clients})


@pytest.fixture(scope="session")
def products_instances(
    run_service: RunService, opensearch_url: str, users_instances: list[str]
) -> Iterator[list[str]]:
    env = {
        "OPENSEARCH_URL": opensearch_url,
        "SEARCH_INDEX": "e2e_" + uuid.uuid4().hex[:8],
        "JWKS_URL": _jwks(users_instances),
    }
    yield from run_service("products", env)


@pytest.fixture(scope="session")
def carts_instances(
    run_service: RunService,
    users_instances: list[str],
    products_instances: list[str],
    internal_url: str,
) -> Iterator[list[str]]:
    env = {
        "JWKS_URL": _jwks(users_instances),
        # Its batch SKU lookup goes through the gateway's internal listener, as in the local stack.
        "PRODUCTS_URL": internal_url,
        # Every test client is 127.0.0.1: the per-address quota of guest carts is tested beside
        # the service, not here.
        "GUEST_CARTS_PER_MINUTE": "100000",
    }
    yield from run_service("carts", env)


@pytest.fixture(scope="session")
def stripe_recording_url(
    stripe_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """stripe-mock behind the recording proxy, as a process (as the local stack runs it): where
    the e2e payments instances call Stripe, so a test can read what reached it
    (`/_proxy/requests`)."""
    proxy = stripe_proxy_peer(tmp_path_factory.mktemp("stripe-proxy"), free_port(), stripe_url)
    proxy.start()
    try:
        yield f"http://127.0.0.1:{proxy.port}"
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def payments_instances(
    run_service: RunService, stripe_recording_url: str, users_instances: list[str]
) -> Iterator[list[str]]:
    env = {
        "JWKS_URL": _jwks(users_instances),
        "STRIPE_API_URL": stripe_recording_url,
        "STRIPE_API_KEY": "sk_test_e2e",
        "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
    }
    yield from run_service("payments", env)


@pytest.fixture(scope="session")
def orders_instances(
    run_service: RunService,
    users_instances: list[str],
    products_instances: list[str],
    carts_instances: list[str],
    payments_instances: list[str],
    internal_url: str,
) -> Iterator[list[str]]:
    env = {
        "JWKS_URL": _jwks(users_instances),
        # Every service it calls, and its service token, through the gateway's internal listener.
        "CARTS_URL": internal_url,
        "PRODUCTS_URL": internal_url,
        "PAYMENTS_URL": internal_url,
        "USERS_URL": internal_url,
        "SERVICE_CLIENT_ID": "orders",
        "SERVICE_CLIENT_SECRET": ORDERS_CLIENT_SECRET,
    }
    yield from run_service("orders", env)


@pytest.fixture(scope="session")
def notifications_instances(
    run_service: RunService,
    users_instances: list[str],
    mail_server: MailServer,
    twilio_url: str,
    internal_url: str,
) -> Iterator[list[str]]:
    env = {
        "JWKS_URL": _jwks(users_instances),
        "USERS_URL": internal_url,
        "SERVICE_CLIENT_ID": "notifications",
        "SERVICE_CLIENT_SECRET": NOTIFICATIONS_CLIENT_SECRET,
        "SMTP_HOST": mail_server.smtp_host,
        "SMTP_PORT": str(mail_server.smtp_port),
        "TWILIO_API_URL": twilio_url,
    }
    yield from run_service("notifications", env)


@pytest.fixture(scope="session")
def start_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartGateway]:
    """Start an nginx gateway for the given upstreams, routed as the registry says unless `routes`,
    with an internal listener on `internal_port` if given; answers its base URL. All stop at the
    end."""
    started: list[Peer] = []

    def start(
        upstreams: Upstreams,
        routes: Sequence[gateway_config.Route] | None = None,
        internal_port: int | None = None,
    ) -> str:
        port = free_port()
        state = tmp_path_factory.mktemp("gateway")
        peer = gateway_config.peer(
            state, port, upstreams, routes=routes, internal_port=internal_port
        )
        started.append(peer.start(timeout=10))
        return f"http://127.0.0.1:{port}"

    try:
        yield start
    finally:
        for peer in reversed(started):
            peer.stop()


@pytest.fixture(scope="session")
def gateway(
    start_gateway: StartGateway,
    internal_port: int,
    users_instances: list[str],
    products_instances: list[str],
    carts_instances: list[str],
    orders_instances: list[str],
    payments_instances: list[str],
    notifications_instances: list[str],
) -> str:
    """The shop's gateway with two instances of each service behind it: the base URL clients use.
    Its internal listener (`internal_url`) is where the services call each other."""
    upstreams = {
        "users": users_instances,
        "products": products_instances,
        "carts": carts_instances,
        "orders": orders_instances,
        "payments": payments_instances,
        "notifications": notifications_instances,
    }
    return start_gateway(upstreams, internal_port=internal_port)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session
