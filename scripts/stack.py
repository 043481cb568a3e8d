"""The local stack behind `./task up`, `down`, `status` and `plan`: PostgreSQL, FerretDB, NATS,
OpenSearch, stripe-mock, the services, nginx (the gateway, and the internal listener the services
call each other through)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import gateway
import registry

from shopkit.settings import read_env_file
from shopkit.testing import peers
from shopkit.testing.peers import Peer, PeerFailed

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / ".run"
LOGS = RUN / "logs"
PIDS = RUN / "pids.json"
GATEWAY_PORT = 8080
# The gateway's internal listener: the address in .env.example's PRODUCTS_URL, CARTS_URL, ...
INTERNAL_PORT = 8090
MONGO_PORT = 27017
POSTGRES_PORT = 27018
NATS_PORT = 4222
SEARCH_PORT = 9200
# The recording proxy in front of stripe-mock (STRIPE_API_URL in .env.example), and stripe-mock's
# HTTP port behind it (its HTTPS port is the system's choice).
STRIPE_PORT = 12111
STRIPE_MOCK_PORT = 12112
# Mailpit (SMTP_PORT in .env.example; its API and web page on MAILPIT_PORT) and the Twilio API peer
# (TWILIO_API_URL): where notifications sends locally, and where you read what it sent.
SMTP_PORT = 1025
MAILPIT_PORT = 8025
TWILIO_PORT = 4010


def stack_env() -> dict[str, str]:
    """`.env.example` (working local values) overlaid with `.env` (your own, never committed)."""
    example = ROOT / ".env.example"
    if not example.exists():
        raise PeerFailed(".env.example is missing: it holds the values every service needs")
    values = read_env_file(example)
    if (ROOT / ".env").exists():
        values.update(read_env_file(ROOT / ".env"))
    return values


def own_credentials(env: Mapping[str, str], name: str) -> dict[str, str]:
    """The service's own client secret, as users knows it (SERVICE_CLIENTS): one env file serves
    every service, each presents its own credentials."""
    pairs = (item.partition(":") for item in env.get("SERVICE_CLIENTS", "").split(","))
    secrets = {client.strip(): secret.strip() for client, _, secret in pairs if secret}
    return {"SERVICE_CLIENT_SECRET": secrets[name]} if name in secrets else {}


def service_command(name: str) -> list[str]:
    script = ROOT / ".venv" / "bin" / name
    if not script.exists():
        raise PeerFailed(f"{script} is missing: run ./task install")
    return [str(script)]


def parts(env: Mapping[str, str]) -> list[Peer]:
    """Every process of the stack, in start order (each waits for the ones before it)."""
    stack = [
        *peers.mongo(RUN, MONGO_PORT, postgres_port=POSTGRES_PORT, storage=peers.backend(env)),
        peers.nats(RUN, NATS_PORT),
        peers.opensearch(RUN, SEARCH_PORT),
        peers.stripe_mock(RUN, STRIPE_MOCK_PORT),
        peers.stripe_proxy(RUN, STRIPE_PORT, f"http://127.0.0.1:{STRIPE_MOCK_PORT}"),
        peers.mailpit(RUN, SMTP_PORT, MAILPIT_PORT),
        peers.twilio(RUN, TWILIO_PORT),
    ]
    # Each service's instances, one per port in services/registry.toml (nginx balances across them).
    services = registry.load()
    for name, service in services.items():
        for port in service.ports:
            stack.append(
                Peer(
                    name=f"{name}-{port}",
                    argv=service_command(name),
                    log_path=LOGS / f"{name}-{port}.log",
                    env={
                        **env,
                        **own_credentials(env, name),
                        "SERVICE_NAME": name,
                        "PORT": str(port),
                    },
                    port=port,
                    ready_url=f"http://127.0.0.1:{port}/readyz",
                )
            )
    stack.append(
        gateway.peer(
            RUN / "nginx",
            GATEWAY_PORT,
            upstreams(),
            LOGS / "nginx.log",
            internal_port=INTERNAL_PORT,
        )
    )
    return stack


def upstreams() -> dict[str, list[str]]:
    """Each service's instances, as the gateway routes to them."""
    services = registry.load()
    return {name: [f"127.0.0.1:{port}" for port in s.ports] for name, s in services.items()}


def reroute(routed: Mapping[str, Sequence[str]]) -> None:
    """Point the running gateway at `routed` instead (an instance taken out to drain, a service
    behind a fault proxy): its config rewritten, then nginx reloaded (SIGHUP: new workers take
    the new upstreams, the old ones finish what they hold and exit)."""
    state = (RUN / "nginx").resolve()
    (state / "nginx.conf").write_text(
        gateway.render(GATEWAY_PORT, routed, state, internal_port=INTERNAL_PORT)
    )
    pid = read_pids().get("nginx")
    if pid is None or not ours(pid):
        raise PeerFailed("the gateway is not running: ./task up")
    os.kill(pid, signal.SIGHUP)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def ours(pid: int) -> bool:
    """Still a process we started: alive and leading its own session (Peer starts each so)."""
    try:
        return alive(pid) and os.getsid(pid) == pid
    except OSError:
        return False


def read_pids() -> dict[str, int]:
    try:
        pids: dict[str, int] = json.loads(PIDS.read_text())
    except FileNotFoundError:
        return {}
    return pids


def write_pids(pids: Mapping[str, int]) -> None:
    RUN.mkdir(parents=True, exist_ok=True)
    PIDS.write_text(json.dumps(dict(pids), indent=2) + "\n")


def up() -> None:
    env = stack_env()
    pids = read_pids()
    for part in parts(env):
        pid = pids.get(part.name)
        if pid is not None and ours(pid):
            # Ours from an earlier `up`: perhaps still starting, never start a second copy.
            part.wait_ready(timeout=180)
            print(f"{part.name:<12} already running (pid {pid})")
            continue
        print(f"{part.name:<12} starting...", flush=True)
        try:
            part.start(timeout=180)
        finally:
            # Recorded even when not ready, so `down` can still stop it.
            if part.process is not None and part.process.poll() is None:
                pids[part.name] = part.process.pid
                write_pids(pids)
        assert part.process is not None
        print(f"{part.name:<12} ready (pid {part.process.pid})")
    print()
    print(f"gateway   http://127.0.0.1:{GATEWAY_PORT}  (API reference: /api/docs)")
    print(
        f"internal  http://127.0.0.1:{INTERNAL_PORT}  (services' /internal/ routes; loopback only)"
    )
    for name, service in registry.load().items():
        print(f"{name:<9} " + "  ".join(f"http://127.0.0.1:{port}" for port in service.ports))
    storage = peers.backend(env)
    where = f"PostgreSQL on :{POSTGRES_PORT}" if storage == "postgresql" else "SQLite in .run"
    print(f"mongodb   mongodb://127.0.0.1:{MONGO_PORT}/  (FerretDB on {where})")
    print(f"nats      nats://127.0.0.1:{NATS_PORT}")
    print(f"search    http://127.0.0.1:{SEARCH_PORT}  (OpenSearch)")
    print(
        f"stripe    http://127.0.0.1:{STRIPE_PORT}  (stripe-mock behind a recording proxy: "
        "/_proxy/requests; webhooks: sign your own)"
    )
    print(
        f"mail      smtp://127.0.0.1:{SMTP_PORT}, read at http://127.0.0.1:{MAILPIT_PORT}  (Mailpit)"
    )
    print(f"sms       http://127.0.0.1:{TWILIO_PORT}  (Twilio API peer)")
    print(f"logs      {LOGS.relative_to(ROOT)}/ and {(RUN / 'nginx').relative_to(ROOT)}/access.log")


def down() -> None:
    pids = read_pids()
    # Reverse start order: the gateway stops taking requests before the services drain.
    for name, pid in reversed(list(pids.items())):
        if ours(pid):
            print(f"{name:<12} stopping (pid {pid})", flush=True)
            peers.stop_group(pid, sig=peers.stop_signal(name))
        else:
            print(f"{name:<12} was not running")
    PIDS.unlink(missing_ok=True)


def status() -> None:
    pids = read_pids()
    for part in parts(stack_env()):
        pid = pids.get(part.name)
        if pid is None or not ours(pid):
            state = "stopped"
        elif part.ready():
            state = f"running (pid {pid})"
        else:
            state = f"alive but not ready (pid {pid})"
        print(f"{part.name:<12} {state}")


def plan() -> None:
    """What `up` would start, in order, starting nothing (it renders the gateway's config)."""
    env = stack_env()
    for part in parts(env):
        port = f":{part.port}" if part.port is not None else ""
        print(f"{part.name:<14} {port:<7} {shlex.join(part.argv)}")
    print(f"\nthe gateway's config, rendered: {RUN / 'nginx' / 'nginx.conf'}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "command",
        choices=["up", "down", "status", "plan"],
        help="plan: print what up would start, starting nothing",
    )
    command = parser.parse_args(argv).command
    # The tools built by ./task install, also when this runs outside the Taskfile.
    os.environ["PATH"] = f"{ROOT / '.tools' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    try:
        {"up": up, "down": down, "status": status, "plan": plan}[command]()
    except PeerFailed as error:
        sys.exit(f"{error}\n(logs in {LOGS}; `./task down` stops what did start)")


if __name__ == "__main__":
    main()
