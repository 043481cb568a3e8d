"""Faults injected into the running local stack during a load run, each scripted and undone.

Each acts on the processes of `./task up` (their pids in .run/pids.json), on its gateway's routes
or on the Stripe recording proxy's fault switch; it answers when its cause was lifted (the killed
instance started again, the slowed service routed straight again).
"""

from __future__ import annotations

import json
import signal
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shopkit.testing import peers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import registry  # noqa: E402 (scripts/ is no package)
import stack  # noqa: E402

# How long a killed or stopped peer stays down before it is started again.
DOWN_FOR = 5.0
# A Stripe outage, and products' slowness, last this long.
OUTAGE = 30.0
SLOWNESS_MS = 2000
# Once nginx has been told to stop routing to an instance: its old workers finish what they
# hold, and the instance's in-flight requests end, well within this.
DRAIN = 2.0
TOXIPROXY_PORT = 8474
KILLED_INSTANCE = "orders-8131"


def _parts() -> dict[str, peers.Peer]:
    return {part.name: part for part in stack.parts(stack.stack_env())}


def _stop(name: str, sig: signal.Signals | None = None) -> None:
    pid = stack.read_pids().get(name)
    if pid is None or not stack.ours(pid):
        raise peers.PeerFailed(f"{name} is not running: ./task up")
    peers.stop_group(pid, sig=sig or peers.stop_signal(name))


def _start(name: str) -> None:
    part = _parts()[name]
    part.start(timeout=120)
    assert part.process is not None
    pids = stack.read_pids()
    pids[name] = part.process.pid
    stack.write_pids(pids)


def kill_instance() -> float:
    """One orders instance killed outright (SIGKILL: no drain), started again after DOWN_FOR."""
    _stop(KILLED_INSTANCE, signal.SIGKILL)
    time.sleep(DOWN_FOR)
    lifted = time.time()
    _start(KILLED_INSTANCE)
    return lifted


def restart(name: str) -> Callable[[], float]:
    def fault() -> float:
        _stop(name)
        time.sleep(DOWN_FOR)
        lifted = time.time()
        _start(name)
        return lifted

    fault.__doc__ = f"{name} stopped, started again after {DOWN_FOR:.0f} s"
    return fault


def _stripe(fault: str, **rule: float) -> float:
    body = json.dumps({"fault": fault, "seconds": OUTAGE, "path": "/v1/*", **rule}).encode()
    url = f"{stack.stack_env()['STRIPE_API_URL']}/_proxy/faults"
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})  # noqa: S310
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 (loopback)
    time.sleep(OUTAGE)
    return time.time()


def stripe_errors() -> float:
    """Stripe answers every call with its 500 for OUTAGE seconds."""
    return _stripe("error")


def stripe_timeouts() -> float:
    """Stripe holds every call past the client's timeout, for OUTAGE seconds."""
    return _stripe("hang", hold=float(stack.stack_env().get("STRIPE_TIMEOUT", "10")) + 5)


def _toxiproxy(method: str, path: str, body: object = None) -> None:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{TOXIPROXY_PORT}{path}", data, method=method
    )
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310


def products_slow() -> float:
    """Every products instance behind Toxiproxy with 2 s of latency for OUTAGE seconds: the
    gateway, and the services calling products through it, reach it only through the proxy."""
    proxy = peers.Peer(
        name="toxiproxy",
        argv=[
            peers.require_binary("toxiproxy-server"),
            "-host",
            "127.0.0.1",
            "-port",
            str(TOXIPROXY_PORT),
        ],
        log_path=stack.LOGS / "toxiproxy.log",
        port=TOXIPROXY_PORT,
    ).start()
    normal = stack.upstreams()
    slowed = dict(normal)
    try:
        slowed["products"] = []
        for address in normal["products"]:
            port = peers.free_port()
            _toxiproxy(
                "POST",
                "/proxies",
                {"name": address, "listen": f"127.0.0.1:{port}", "upstream": address},
            )
            _toxiproxy(
                "POST",
                f"/proxies/{address}/toxics",
                {"name": "slow", "type": "latency", "attributes": {"latency": SLOWNESS_MS}},
            )
            slowed["products"].append(f"127.0.0.1:{port}")
        stack.reroute(slowed)
        time.sleep(OUTAGE)
    finally:
        stack.reroute(normal)
        lifted = time.time()
        time.sleep(DRAIN + SLOWNESS_MS / 1000)  # the old workers' slowed requests end first
        proxy.stop()
    return lifted


def rolling_restart() -> float:
    """Every instance of every service in turn, as an orchestrator rolls them: the gateway stops
    routing to it, it drains and stops (SIGTERM), starts again, is ready, is routed to again;
    only then the next. nginx never retries a POST it has sent: nothing may be in flight."""
    normal = stack.upstreams()
    for name, service in registry.load().items():
        for port in service.ports:
            address = f"127.0.0.1:{port}"
            stack.reroute({**normal, name: [a for a in normal[name] if a != address]})
            time.sleep(DRAIN)
            _stop(f"{name}-{port}")
            _start(f"{name}-{port}")
            stack.reroute(normal)
    return time.time()


@dataclass(frozen=True, slots=True)
class Fault:
    act: Callable[[], float]  # breaks, waits, lifts the cause: when it was lifted
    seconds: float  # about how long it lasts, so that the run outlasts it


# A rolling restart takes about this long per instance: out of the routes, drained, restarted.
ROLL_PER_INSTANCE = 8.0
FAULTS = {
    "kill-instance": Fault(kill_instance, DOWN_FOR + 5),
    "ferretdb-restart": Fault(restart("ferretdb"), DOWN_FOR + 5),
    "nats-restart": Fault(restart("nats"), DOWN_FOR + 5),
    "products-slow": Fault(products_slow, OUTAGE + 5),
    "stripe-errors": Fault(stripe_errors, OUTAGE),
    "stripe-timeouts": Fault(stripe_timeouts, OUTAGE),
    "rolling-restart": Fault(
        rolling_restart, ROLL_PER_INSTANCE * sum(s.instances for s in registry.load().values())
    ),
}


@dataclass(frozen=True, slots=True)
class Window:
    """When a fault began, when its cause was lifted and when it was over (Unix seconds), and
    when every instance was ready again (None: not within the recovery timeout)."""

    name: str
    began: float
    lifted: float
    ended: float
    recovered: float | None


def ready() -> bool:
    """Every instance of every service answers its readiness probe."""
    for service in registry.load().values():
        for port in service.ports:
            try:
                url = f"http://127.0.0.1:{port}/readyz"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status != 200:
                        return False
            except OSError:
                return False
    return True


def inject(name: str, recovery_timeout: float = 60.0) -> Window:
    """Run fault `name`, then wait until every instance is ready again (or the timeout)."""
    began = time.time()
    lifted = FAULTS[name].act()
    ended = time.time()
    deadline = time.monotonic() + recovery_timeout
    while time.monotonic() < deadline:
        if ready():
            return Window(name, began, lifted, ended, time.time())
        time.sleep(0.5)
    return Window(name, began, lifted, ended, None)
