"""The Helm chart installed on a real Kubernetes node (`./task test:k8s`): the services become
ready behind the project's gateway, a shopper's journey passes from a pod, a rolling restart under
load fails no request, a scaled service is balanced over its pods, and uninstall leaves nothing.

The node is the one scripts/k8s_node.py builds and runs here (no registry is reachable, so kind
cannot start); with SHOP_K8S_CLUSTER=existing the test uses the cluster of KUBECONFIG instead and
loads the images with SHOP_K8S_LOAD (CI: `kind load docker-image --name shop`).
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shopkit.settings import read_env_file

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("SHOP_K8S") != "1", reason="the Kubernetes install runs with ./task test:k8s"
    ),
    # The first test's setup builds the node (about 25 minutes cold) and the images.
    pytest.mark.timeout(5400),
]

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NODE = ("uv", "run", "python", str(ROOT / "scripts" / "k8s_node.py"))
HELM = str(ROOT / ".tools" / "bin" / "helm")
NAMESPACE = "shop"
SERVICES = ("users", "products", "carts", "orders", "payments", "notifications")
STANDINS = ("ferretdb", "nats", "opensearch", "stripe-mock", "mailpit", "nginx")
WEBHOOK_SECRET = "whsec_k8s_" + uuid.uuid4().hex
# Concurrent shoppers during the rolling restart, each pausing 0.1 s between two requests.
LOAD_WORKERS = 4


@dataclass(frozen=True)
class Cluster:
    kubectl_binary: str
    kubeconfig: str | None
    load: tuple[str, ...]

    @property
    def kubectl(self) -> tuple[str, ...]:
        return (self.kubectl_binary, *self._config)

    @property
    def helm(self) -> tuple[str, ...]:
        return (HELM, *self._config)

    @property
    def _config(self) -> tuple[str, ...]:
        return ("--kubeconfig", self.kubeconfig) if self.kubeconfig else ()

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        done = subprocess.run(
            [*self.kubectl, *args], input=stdin, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"kubectl {shlex.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout


def _run(*argv: str, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    assert done.returncode == 0, f"{shlex.join(argv)}:\n{done.stdout[-4000:]}{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.environ.get("SHOP_K8S_CLUSTER") == "existing":
        yield Cluster("kubectl", None, tuple(shlex.split(os.environ["SHOP_K8S_LOAD"])))
        return
    started = time.monotonic()
    _run(*NODE, "build", timeout=3600)
    print(f"node binaries: {time.monotonic() - started:.0f} s")
    started = time.monotonic()
    try:
        kubeconfig = _run(*NODE, "up", timeout=900).strip().splitlines()[-1]
        print(f"node up: {time.monotonic() - started:.0f} s")
        kubectl = str(ROOT / ".tools" / "k8s" / "v1.34.4" / "bin" / "kubectl")
        yield Cluster(kubectl, kubeconfig, (*NODE, "load"))
    finally:
        logs = tmp_path_factory.mktemp("node-logs")
        _run(*NODE, "down", "--logs", str(logs), timeout=300)
        print(f"the node's logs: {logs}")


@pytest.fixture(scope="module")
def images(cluster: Cluster) -> list[str]:
    """The services' images and the stand-ins, built as compose's local.yaml builds them, in the
    node's image store."""
    # Where registries are reachable (CI), the official base: SHOP_PYTHON_IMAGE; here the stand-in.
    base = (
        os.environ.get("SHOP_PYTHON_IMAGE")
        or _run("bash", "scripts/base-image.sh", "shop-python-base:bookworm").split()[-1]
    )
    example = read_env_file(ROOT / ".env.example")
    env = {
        "PATH": "/usr/bin:/usr/sbin:/bin:/sbin:" + os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/root"),
        "DOCKER_BUILDKIT": "1",
        "COMPOSE_DOCKER_CLI_BUILD": "1",
        "PYTHON_IMAGE": base,
        # What compose.yaml requires to read at all; nothing runs here.
        **{name: example.get(name, "x") for name in ("SIGNING_KEYS", "PASSWORD_PEPPER")},
        **dict.fromkeys(
            ("ORDERS_CLIENT_SECRET", "NOTIFICATIONS_CLIENT_SECRET", "STRIPE_API_KEY",
             "STRIPE_WEBHOOK_SECRET", "UNSUBSCRIBE_SECRET", "STRIPE_API_URL", "SMTP_HOST"), "x"),
    }  # fmt: skip
    started = time.monotonic()
    compose = ("docker-compose", "-f", "compose/compose.yaml", "-f", "compose/local.yaml")
    _run(*compose, "--project-name", "shopk8s", "build", timeout=1800, env=env)
    tags = [f"shop-{name}:latest" for name in SERVICES]
    tags += [f"shop-standin-{name}:local" for name in STANDINS]
    _run(*cluster.load, *tags, timeout=900)
    print(f"images built and loaded: {time.monotonic() - started:.0f} s")
    return tags


def _values(tmp: Path) -> Path:
    example = read_env_file(ROOT / ".env.example")
    values: dict[str, Any] = yaml.safe_load((HERE / "values.yaml").read_text())
    values["secrets"]["values"] |= {
        "SIGNING_KEYS": example["SIGNING_KEYS"],
        "PASSWORD_PEPPER": example["PASSWORD_PEPPER"],
        "ADMIN_PASSWORD": example["ADMIN_PASSWORD"],
        "STRIPE_API_KEY": example["STRIPE_API_KEY"],
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "UNSUBSCRIBE_SECRET": example["UNSUBSCRIBE_SECRET"],
        "ORDERS_CLIENT_SECRET": "k8s-orders-" + uuid.uuid4().hex,
        "NOTIFICATIONS_CLIENT_SECRET": "k8s-notifications-" + uuid.uuid4().hex,
    }
    values["services"]["users"]["env"]["ADMIN_EMAIL"] = example["ADMIN_EMAIL"]
    path = tmp / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def installed(
    cluster: Cluster, images: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("chart")
    namespace = cluster.run("create", "namespace", NAMESPACE, "--dry-run=client", "-o", "yaml")
    cluster.run("apply", "-f", "-", stdin=namespace)
    try:
        cluster.run("-n", NAMESPACE, "apply", "-f", str(HERE / "peers.yaml"))
        cluster.run("-n", NAMESPACE, "wait", "--for=condition=Available", "deployment", "--all",
                    "--timeout=300s", timeout=330)  # fmt: skip
        started = time.monotonic()
        _run(*cluster.helm, "install", "shop", str(ROOT / "charts" / "shop"), "--namespace", NAMESPACE,
             "--values", str(_values(tmp)), "--wait", "--wait-for-jobs", "--timeout", "15m",
             timeout=1000)  # fmt: skip
        print(f"helm install --wait: {time.monotonic() - started:.0f} s")
        yield cluster
    finally:
        _teardown(cluster, tmp)


def _teardown(cluster: Cluster, tmp: Path) -> None:
    """Uninstall and check that the release left nothing, then remove the namespace; each step
    tried whatever the one before did, the first failure raised at the end."""
    failures: list[str] = []
    steps = (
        ("pods", lambda: (tmp / "pods.txt").write_text(cluster.run("-n", NAMESPACE, "get", "pods", "-o", "wide"))),
        ("uninstall", lambda: _run(*cluster.helm, "uninstall", "shop", "--namespace", NAMESPACE,
                                   "--ignore-not-found", "--wait", "--cascade", "foreground", timeout=600)),
        ("nothing left", lambda: _nothing_left(cluster)),
        ("namespace", lambda: cluster.run("delete", "namespace", NAMESPACE, "--ignore-not-found",
                                          "--wait", timeout=600)),
    )  # fmt: skip
    for name, step in steps:
        try:
            step()
        except (AssertionError, subprocess.SubprocessError, OSError) as error:
            failures.append(f"{name}: {error}")
    assert not failures, failures


def _nothing_left(cluster: Cluster) -> None:
    kinds = "all,configmaps,secrets,networkpolicies,poddisruptionbudgets,jobs"
    deadline = time.monotonic() + 180
    while left := cluster.run(
        "-n", NAMESPACE, "get", kinds, "-l", "app.kubernetes.io/part-of=shop", "-o", "name"
    ):
        assert time.monotonic() < deadline, f"left after uninstall: {left}"
        time.sleep(3)


@pytest.fixture(scope="module")
def gateway(installed: Cluster) -> str:
    """The gateway's NodePort on the node's address, as this machine reaches it."""
    port = installed.run("-n", NAMESPACE, "get", "service", "gateway",
                         "-o", "jsonpath={.spec.ports[?(@.name=='http')].nodePort}")  # fmt: skip
    address = installed.run("get", "nodes", "-o",
                            "jsonpath={.items[0].status.addresses[?(@.type=='InternalIP')].address}")  # fmt: skip
    return f"http://{address}:{port}"


def _journey_pod(admin: tuple[str, str]) -> dict[str, Any]:
    command = ["python3", "/journey/journey.py", "http://gateway:8080", "http://stripe-mock:12111",
               *admin, WEBHOOK_SECRET]  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "journey", "labels": {"app": "journey"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "journey",
                    "image": "shop-users:latest",
                    "imagePullPolicy": "Never",
                    "command": command,
                    "volumeMounts": [{"name": "journey", "mountPath": "/journey"}],
                }
            ],
            "volumes": [{"name": "journey", "configMap": {"name": "journey"}}],
        },
    }


def test_a_shoppers_journey_passes_from_a_pod_through_the_gateway(installed: Cluster) -> None:
    example = read_env_file(ROOT / ".env.example")
    installed.run("-n", NAMESPACE, "create", "configmap", "journey",
                  f"--from-file={HERE / 'journey.py'}")  # fmt: skip
    pod = _journey_pod((example["ADMIN_EMAIL"], example["ADMIN_PASSWORD"]))
    installed.run("-n", NAMESPACE, "apply", "-f", "-", stdin=json.dumps(pod))
    try:
        deadline = time.monotonic() + 240
        phase_of = ("-n", NAMESPACE, "get", "pod", "journey", "-o", "jsonpath={.status.phase}")
        while (phase := installed.run(*phase_of)) not in ("Succeeded", "Failed"):
            assert time.monotonic() < deadline, f"the journey pod is still {phase}"
            time.sleep(2)
        output = installed.run("-n", NAMESPACE, "logs", "journey")
        assert phase == "Succeeded", output
        result = json.loads(output.strip().splitlines()[-1])
        print(f"journey from a pod: {result}")
        assert (result["status"], result["payment_status"], result["found"]) == (
            "placed",
            "paid",
            True,
        )
    finally:
        installed.run("-n", NAMESPACE, "delete", "pod", "journey", "--wait=false")
        installed.run("-n", NAMESPACE, "delete", "configmap", "journey")


async def _shopper(gateway: str, http: aiohttp.ClientSession) -> dict[str, str]:
    credentials = {
        "email": f"k8s-{uuid.uuid4().hex[:8]}@example.com",
        "password": "correct horse battery",
    }
    async with http.post(
        f"{gateway}/api/v1/auth/register", json={**credentials, "name": "Ada"}
    ) as r:
        assert r.status == 201, await r.text()
    async with http.post(f"{gateway}/api/v1/auth/login", json=credentials) as r:
        assert r.status == 200, await r.text()
        return {"Authorization": f"Bearer {(await r.json())['access_token']}"}


def _pods(cluster: Cluster, service: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/name={service},app.kubernetes.io/component=service"
    listed = cluster.run("-n", NAMESPACE, "get", "pods", "-l", selector, "-o", "json")
    pods: list[dict[str, Any]] = json.loads(listed)["items"]
    return pods


async def test_a_rolling_restart_under_load_fails_no_request(
    installed: Cluster, gateway: str
) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        shopper = await _shopper(gateway, http)
        statuses: dict[str, list[int | str]] = {"GET": [], "POST": []}
        stop = asyncio.Event()

        async def shop() -> None:
            # A list of orders (GET), and an order from an empty cart (POST, refused with a 4xx):
            # both answered by orders, the POST never retried by nginx once sent.
            while not stop.is_set():
                try:
                    async with http.get(f"{gateway}/api/v1/orders", headers=shopper) as r:
                        statuses["GET"].append(r.status)
                    headers = {**shopper, "Idempotency-Key": uuid.uuid4().hex}
                    async with http.post(f"{gateway}/api/v1/orders", json={}, headers=headers) as r:
                        statuses["POST"].append(r.status)
                except aiohttp.ClientError as error:
                    statuses["GET"].append(type(error).__name__)
                await asyncio.sleep(0.1)

        workers = [asyncio.create_task(shop()) for _ in range(LOAD_WORKERS)]
        await asyncio.sleep(3)
        before = {pod["metadata"]["name"] for pod in _pods(installed, "orders")}
        started = time.monotonic()
        await asyncio.to_thread(
            installed.run, "-n", NAMESPACE, "rollout", "restart", "deployment/orders"
        )
        status = ("-n", NAMESPACE, "rollout", "status", "deployment/orders", "--timeout=600s")
        await asyncio.to_thread(installed.run, *status, timeout=620)
        # Until the old pods have finished their pause and drain and are gone.
        while before & {
            pod["metadata"]["name"] for pod in await asyncio.to_thread(_pods, installed, "orders")
        }:
            assert time.monotonic() - started < 600, "the old pods never stopped"
            await asyncio.sleep(2)
        rolled = time.monotonic() - started
        await asyncio.sleep(3)
        stop.set()
        await asyncio.gather(*workers)

    sent = len(statuses["GET"]) + len(statuses["POST"])
    failed = [s for s in statuses["GET"] if s != 200] + [
        s for s in statuses["POST"] if not (isinstance(s, int) and 400 <= s < 500)
    ]
    print(f"rolling restart of orders: {rolled:.0f} s, {sent} requests sent, {len(failed)} failed")
    assert sent > 200
    assert failed == []


def _served(cluster: Cluster, pod: str, route: str) -> float:
    read = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/metrics').read().decode())"
    text = cluster.run("-n", NAMESPACE, "exec", pod, "--", "python3", "-c", read)
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_requests_total"
        and sample.labels.get("route") == route
        and sample.labels.get("method") == "GET"
    )


async def test_scaling_a_service_spreads_the_gateways_requests_over_its_pods(
    installed: Cluster, gateway: str
) -> None:
    installed.run("-n", NAMESPACE, "scale", "deployment/products", "--replicas=3")
    installed.run(
        "-n", NAMESPACE, "rollout", "status", "deployment/products", "--timeout=300s", timeout=320
    )
    pods = [pod["metadata"]["name"] for pod in _pods(installed, "products")]
    assert len(pods) == 3
    # The gateway sees new pods once the cluster DNS's cache has them (up to its TTL) and its next look.
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 120
        while True:
            before = {pod: _served(installed, pod, "/api/v1/products") for pod in pods}
            for _ in range(30):
                async with http.get(f"{gateway}/api/v1/products") as r:
                    assert r.status == 200, await r.text()
            served = {
                pod: _served(installed, pod, "/api/v1/products") - before[pod] for pod in pods
            }
            if all(served.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(3)
    print(f"products scaled to 3: {served}")
    assert all(served.values()), served
    assert sum(served.values()) == 30
