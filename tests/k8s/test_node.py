"""The one-node cluster of scripts/k8s_node.py: up, a Service answering by its DNS name, down.

Root only, and slow the first time (`build` takes about 10 minutes cold, `up` about 20 seconds), so
it runs only when asked: `SHOP_K8S=1 uv run pytest tests/k8s`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "k8s_node.py"
sys.path.insert(0, str(ROOT / "scripts"))
import k8s_node  # noqa: E402

# The stand-in base image of scripts/base-image.sh: Debian with python3, nothing from a registry.
BASE_IMAGE = "shop-python-base:bookworm"
NAMESPACE = "smoke"
REPLICAS = 2

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("SHOP_K8S") != "1",
        reason="set SHOP_K8S=1 to run a real one-node cluster (root; builds it the first time)",
    ),
    pytest.mark.skipif(
        os.environ.get("SHOP_K8S_CLUSTER") == "existing",
        reason="the node of scripts/k8s_node.py is not used with an existing cluster",
    ),
    # A cold build of the binaries is most of it; a warm run takes a minute or two.
    pytest.mark.timeout(3600),
]


@dataclass(frozen=True, slots=True)
class Cluster:
    state: Path
    kubeconfig: Path
    sysctls_before: dict[str, str]

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120) -> str:
        argv = [str(k8s_node.BIN / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def apply(self, *objects: dict[str, Any]) -> None:
        self.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps({"kind": "List", "apiVersion": "v1", "items": list(objects)}),
        )


def node_command(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"k8s_node.py {' '.join(args)}:\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state = tmp_path_factory.mktemp("k8s") / "node"
    logs = tmp_path_factory.mktemp("k8s-logs")
    sysctls_before = k8s_node.read_sysctls()
    node_command("build", timeout=3000)
    if subprocess.run(
        [k8s_node.DOCKER, "image", "inspect", BASE_IMAGE], capture_output=True
    ).returncode:
        subprocess.run(["bash", str(ROOT / "scripts" / "base-image.sh")], check=True, timeout=1200)
    try:
        up = node_command("up", "--state", str(state), timeout=600)
        yield Cluster(state, Path(up.stdout.strip()), sysctls_before)
    finally:
        # Safe to repeat: the last test has taken the node down already when all went well.
        node_command("down", "--state", str(state), "--logs", str(logs), timeout=300)


def web_objects() -> list[dict[str, Any]]:
    labels = {"app": "web"}
    serve = "hostname > /tmp/name && exec python3 -m http.server 8000 --directory /tmp"
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NAMESPACE},
            "spec": {
                "replicas": REPLICAS,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": BASE_IMAGE,
                                "imagePullPolicy": "Never",
                                "command": ["sh", "-c", serve],
                                "ports": [{"containerPort": 8000}],
                                "readinessProbe": {"httpGet": {"path": "/name", "port": 8000}},
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": NAMESPACE},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8000}]},
        },
    ]


CLIENT = f"""
import json, socket, time, urllib.error, urllib.request
address = socket.gethostbyname("web.{NAMESPACE}.svc.cluster.local")
# Until the Service answers at all: kube-proxy programs it, and the servers listen, a moment after
# the pods are reported running.
deadline = time.monotonic() + 30
while True:
    try:
        urllib.request.urlopen("http://web/name", timeout=5).close()
        break
    except urllib.error.URLError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
# Until every replica has answered (kube-proxy adds a ready endpoint a sync after the other), at
# most 200 calls.
names = []
while len(set(names)) < {REPLICAS} and len(names) < 200:
    with urllib.request.urlopen("http://web/name", timeout=5) as answer:
        names.append(answer.read().decode().strip())
    time.sleep(0.1)
print(json.dumps({{"address": address, "names": names}}))
"""


def wait_for_phase(cluster: Cluster, pod: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        phase = cluster.kubectl(
            "-n", NAMESPACE, "get", "pod", pod, "-o", "jsonpath={.status.phase}"
        )
        if phase in {"Succeeded", "Failed"}:
            return phase
        time.sleep(1)
    raise AssertionError(f"pod {pod} still running after {timeout:.0f}s")


def test_up_again_says_the_node_is_up(cluster: Cluster) -> None:
    # given the node is up
    # when it is brought up again
    again = node_command("up", "--state", str(cluster.state), timeout=60)

    # then it says so and names the same kubeconfig
    assert "up already" in again.stderr
    assert again.stdout.strip() == str(cluster.kubeconfig) == str(cluster.state / "kubeconfig")


def test_a_service_answers_by_its_dns_name_from_another_pod(cluster: Cluster) -> None:
    # given a locally built image loaded into the node, and two replicas behind a Service
    node_command("load", "--state", str(cluster.state), BASE_IMAGE, timeout=600)
    cluster.apply(*web_objects())
    cluster.kubectl(
        "-n", NAMESPACE, "rollout", "status", "deployment/web", "--timeout=180s", timeout=200
    )
    service_ip = cluster.kubectl(
        "-n", NAMESPACE, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"
    )
    replicas = set(
        cluster.kubectl(
            "-n",
            NAMESPACE,
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ).split()
    )

    # when another pod resolves the Service by name and calls it until each replica answered
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "client", "namespace": NAMESPACE},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "client",
                        "image": BASE_IMAGE,
                        "imagePullPolicy": "Never",
                        "command": ["python3", "-c", CLIENT],
                    }
                ],
            },
        }
    )
    phase = wait_for_phase(cluster, "client")
    output = cluster.kubectl("-n", NAMESPACE, "logs", "client")

    # then the name is the Service's address, and both replicas answered through it
    assert phase == "Succeeded", output
    answer = json.loads(output.strip().splitlines()[-1])
    assert answer["address"] == service_ip
    assert set(answer["names"]) == replicas
    assert len(replicas) == REPLICAS


def test_exec_runs_a_command_in_a_replica(cluster: Cluster) -> None:
    # given the web replicas of the test before
    # when a command runs in one of them through the API server and the kubelet
    output = cluster.kubectl("-n", NAMESPACE, "exec", "deployment/web", "--", "cat", "/tmp/name")

    # then it ran there
    assert output.strip().startswith("web-")


def test_down_leaves_nothing_behind(cluster: Cluster) -> None:
    # given the node with pods running
    # when it is taken down
    node_command("down", "--state", str(cluster.state), timeout=300)

    # then none of its processes, mounts, interfaces, rules or files remain
    assert not cluster.state.exists()
    assert k8s_node.node_processes(cluster.state) == []
    assert not k8s_node.kubepods_cgroups()
    assert k8s_node.mounts_under(cluster.state) == []
    assert not Path(f"/sys/class/net/{k8s_node.BRIDGE}").exists()
    assert not [
        entry for entry in k8s_node.list_dir(Path("/run/netns")) if entry.name.startswith("cni-")
    ]
    for binary in ("iptables", "ip6tables"):
        rules = [
            line
            for table in k8s_node.IPTABLES_TABLES
            for line in k8s_node.iptables_rules(binary, table)
        ]
        assert not [
            line for line in rules if "KUBE-" in line or "CNI-" in line or k8s_node.RULE_TAG in line
        ]
    assert k8s_node.read_sysctls() == cluster.sysctls_before
    # and taking it down again is harmless
    assert (
        "nothing to take down"
        in node_command("down", "--state", str(cluster.state), timeout=60).stderr
    )
