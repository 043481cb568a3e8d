"""A real one-node Kubernetes v1.34 cluster on this machine, built from the Go module proxy.

For the Helm chart's install test: no registry is reachable here, so kind, minikube and k3s cannot
start; this runs the upstream binaries as plain processes instead. Run as root:

    uv run python scripts/k8s_node.py build          # once: about 10 min cold, then a second
    uv run python scripts/k8s_node.py up             # about 20 s; prints the kubeconfig's path
    uv run python scripts/k8s_node.py load shop-users:latest shop-orders:latest
    uv run python scripts/k8s_node.py kubectl get pods -A
    uv run python scripts/k8s_node.py status
    uv run python scripts/k8s_node.py down [--logs DIR]

`build` compiles the wrapper Go modules of tools/k8s (etcd; kube-apiserver, kube-controller-manager,
kube-scheduler, kubelet, kube-proxy and kubectl; CoreDNS; a static pause program) into
.tools/k8s/<version>/bin, `nice`d, and writes the pause and CoreDNS images there as OCI archives.
Each module is rebuilt only when its files change.

`up [--state DIR]` (default .run/k8s) installs what is missing with apt (containerd,
containernetworking-plugins, runc, iptables, openssl), makes a CA and every certificate with the
openssl CLI, and starts, each in its own process group with its pid and log in the state folder:
a containerd of its own (its own config, root, state and socket, apart from Docker's), etcd
(loopback, plain HTTP), kube-apiserver (on the node's address, :6443), kube-controller-manager,
kube-scheduler, the kubelet (node `localhost`, cgroupfs, cgroup v1 allowed) and kube-proxy
(iptables mode). Pods get a bridge (`cni0`, 10.244.0.0/24); Services 10.96.0.0/12. CoreDNS runs
as a Deployment behind the kube-dns Service (10.96.0.10), as in any cluster: pods reach it
through kube-proxy like the chart's own Services, the kubelet restarts it, and it needs no port
on the host. `up` returns once the node is Ready and the cluster's DNS answers through its
Service, and says so when the node is up already. Load project images with `load` (Docker
images, imported into the node's containerd) and run them with `imagePullPolicy: Never`.

`down` stops every process it started, removes the pods' mounts, network namespaces, the bridge
and the iptables rules it and Kubernetes added, puts back the kernel settings the kubelet and
kube-proxy change, and deletes the state folder (`--logs DIR` keeps the logs). Safe to repeat.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import ipaddress
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "tools" / "k8s"
VERSION = "v1.34.4"
TOOLS = ROOT / ".tools" / "k8s" / VERSION
BIN = TOOLS / "bin"
IMAGES = TOOLS / "images"
DEFAULT_STATE = ROOT / ".run" / "k8s"
GO = shutil.which("go") or "/usr/local/go/bin/go"
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
# nftables: its CLI deletes the empty iptables tables the kubelet made (iptables cannot).
APT_PACKAGES = (
    "containerd",
    "containernetworking-plugins",
    "runc",
    "iptables",
    "nftables",
    "openssl",
)
CNI_BIN = Path("/usr/lib/cni")

NODE_NAME = "localhost"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/12"
API_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
BRIDGE = "cni0"
CNI_NETWORK = "shop-k8s"
API_PORT = 6443
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
KUBELET_HEALTHZ_PORT = 10248
PROXY_HEALTHZ_PORT = 10256
# Every port `up` binds, to refuse to start beside something else that holds one.
PORTS = (
    API_PORT,
    ETCD_CLIENT_PORT,
    ETCD_PEER_PORT,
    10250,  # the kubelet's API
    KUBELET_HEALTHZ_PORT,
    10249,  # kube-proxy's metrics
    PROXY_HEALTHZ_PORT,
    10257,  # kube-controller-manager's health and metrics
    10259,  # kube-scheduler's
)
PAUSE_IMAGE = "shop.local/k8s/pause:v1"
COREDNS_VERSION = "v1.15.0"
COREDNS_IMAGE = f"shop.local/k8s/coredns:{COREDNS_VERSION}"
# Marks the iptables rules `up` adds itself, so `down` finds exactly those.
RULE_TAG = "shop-k8s-node"
# Chains Kubernetes (kubelet, kube-proxy) and the CNI plugins make; `down` removes the new ones.
OWNED_CHAIN_PREFIXES = ("KUBE-", "CNI-")
IPTABLES_TABLES = ("filter", "nat", "mangle", "raw")
# What the kubelet (setupKernelTunables) and kube-proxy may change; `down` puts back what `up` saw.
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_be_liberal",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
)
# Host folders the kubelet, containerd and the CNI plugins use whatever they are told; `down`
# removes what `up` did not find there.
HOST_PATHS = (
    Path("/var/log/containers"),
    Path("/var/lib/cni"),
    Path("/run/netns"),
    Path("/run/containerd/s"),
    Path("/run/containerd"),
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
# The node's processes, in start order.
PROCESSES = (
    "containerd",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
)
# Programs `down` may kill when their command line names the state folder (containerd's shims
# among them), beside every process in the kubelet's cgroups.
NODE_PROGRAMS = {*PROCESSES, "containerd-shim-runc-v2", "containerd-shim", "runc", "kubectl"}


class NodeFailed(RuntimeError):
    """A step of bringing the node up or down failed."""


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def run(
    argv: Sequence[str | Path],
    *,
    check: bool = True,
    input: bytes | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        [str(arg) for arg in argv],
        input=input,
        capture_output=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        check=False,
    )
    if check and result.returncode != 0:
        command = shlex.join(str(arg) for arg in argv)
        output = (result.stderr or result.stdout).decode(errors="replace").strip()
        raise NodeFailed(f"{command} exited {result.returncode}: {output[-2000:]}")
    return result


def wait_for(what: str, ready: Callable[[], bool], timeout: float, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise NodeFailed(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


# ---------------------------------------------------------------------------------------------
# build


@dataclass(frozen=True, slots=True)
class GoModule:
    """A wrapper module of tools/k8s and the programs built from it."""

    folder: str
    # Main package -> installed binary name.
    programs: tuple[tuple[str, str], ...]
    ldflags: str = "-s -w"

    @property
    def path(self) -> Path:
        return MODULES / self.folder

    def source_hash(self) -> str:
        digest = hashlib.sha256(self.ldflags.encode())
        for file in sorted(self.path.iterdir()):
            if file.suffix in {".mod", ".sum", ".go"}:
                digest.update(file.name.encode() + b"\0" + file.read_bytes())
        return digest.hexdigest()

    def built(self) -> bool:
        stamp = TOOLS / "stamps" / self.folder
        binaries = all((BIN / name).is_file() for _, name in self.programs)
        return binaries and stamp.is_file() and stamp.read_text() == self.source_hash()

    def build(self) -> None:
        partial = TOOLS / "partial" / self.folder
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        env = {
            **os.environ,
            # Static binaries: the pause and CoreDNS images hold nothing else.
            "CGO_ENABLED": "0",
            # The module folder may be a copy without git: stamping VCS info would fail there.
            "GOFLAGS": os.environ.get("GOFLAGS", "-buildvcs=false"),
            "PATH": f"{Path(GO).parent}:{os.environ.get('PATH', '')}",
        }
        packages = [package for package, _ in self.programs]
        # One `go build` for all of a module's programs shares the compiled packages; each lands
        # in the folder under its package's last path element, renamed below.
        argv = ["nice", "-n", "10", GO, "build", "-trimpath", "-ldflags", self.ldflags]
        output = f"{partial}/" if len(packages) > 1 else str(partial / self.programs[0][1])
        built = subprocess.run(
            [*argv, "-o", output, *packages], cwd=self.path, env=env, check=False
        )
        if built.returncode != 0:
            raise NodeFailed(f"building tools/k8s/{self.folder} failed (go build said why above)")
        BIN.mkdir(parents=True, exist_ok=True)
        for package, name in self.programs:
            program = partial / (name if len(packages) == 1 else package_binary(package))
            program.replace(BIN / name)
        stamp = TOOLS / "stamps" / self.folder
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(self.source_hash())
        shutil.rmtree(partial, ignore_errors=True)


def package_binary(package: str) -> str:
    """The file name `go build -o DIR/` gives a main package (a /vN suffix is skipped)."""
    parts = package.split("/")
    last = parts[-1]
    if len(parts) > 1 and last.startswith("v") and last[1:].isdigit():
        return parts[-2]
    return last


def kubernetes_ldflags() -> str:
    major, minor, _ = VERSION.lstrip("v").split(".")
    variables = {
        "gitVersion": VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = [f"-X k8s.io/component-base/version.{key}={value}" for key, value in variables.items()]
    return " ".join(["-s", "-w", *flags])


KUBERNETES_PROGRAMS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
)
GO_MODULES = (
    GoModule("pause", (("shop.local/tools/k8s/pause", "pause"),)),
    GoModule("etcd", (("go.etcd.io/etcd/server/v3", "etcd"),)),
    GoModule("coredns", (("github.com/coredns/coredns", "coredns"),)),
    GoModule(
        "kubernetes",
        tuple((f"k8s.io/kubernetes/cmd/{name}", name) for name in KUBERNETES_PROGRAMS),
        kubernetes_ldflags(),
    ),
)


def build() -> None:
    """Every binary and image the node needs, each made only when missing or stale."""
    if not Path(GO).is_file():
        raise NodeFailed("go is required to build the node (Go 1.24 or newer, /usr/local/go)")
    for module in GO_MODULES:
        if module.built():
            continue
        names = ", ".join(name for _, name in module.programs)
        log(f"building {names} (tools/k8s/{module.folder} -> {BIN.relative_to(ROOT)})")
        started = time.monotonic()
        module.build()
        log(f"built {names} in {time.monotonic() - started:.0f}s")
    images = {
        "pause": (PAUSE_IMAGE, "pause", ["/pause"]),
        "coredns": (COREDNS_IMAGE, "coredns", ["/coredns"]),
    }
    for archive, (image, binary, entrypoint) in images.items():
        target = IMAGES / f"{archive}.tar"
        stamp = IMAGES / f"{archive}.source-sha256"
        source = hashlib.sha256((BIN / binary).read_bytes()).hexdigest() + image
        if target.is_file() and stamp.is_file() and stamp.read_text() == source:
            continue
        log(f"writing the {image} image ({target.relative_to(ROOT)})")
        IMAGES.mkdir(parents=True, exist_ok=True)
        write_image(target, image, BIN / binary, entrypoint)
        stamp.write_text(source)
    print(BIN)


def write_image(target: Path, name: str, binary: Path, entrypoint: list[str]) -> None:
    """An OCI image archive of one static binary at the root, for `ctr images import`."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder in ("etc", "tmp"):
            entry = tarfile.TarInfo(folder)
            entry.type = tarfile.DIRTYPE
            entry.mode = 0o1777 if folder == "tmp" else 0o755
            tar.addfile(entry)
        entry = tarfile.TarInfo(binary.name)
        entry.mode = 0o755
        entry.size = binary.stat().st_size
        with binary.open("rb") as program:
            tar.addfile(entry, program)
    layer_bytes = layer.getvalue()
    compressed = gzip.compress(layer_bytes, mtime=0)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": entrypoint,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer_bytes)]},
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", config_bytes),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", compressed)],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                **descriptor("application/vnd.oci.image.manifest.v1+json", manifest_bytes),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rpartition(":")[2],
                },
            }
        ],
    }
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index, sort_keys=True).encode(),
    }
    for blob in (compressed, config_bytes, manifest_bytes):
        files[f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}"] = blob
    partial = target.with_suffix(".partial")
    with tarfile.open(partial, mode="w") as tar:
        for folder in ("blobs", "blobs/sha256"):
            entry = tarfile.TarInfo(folder)
            entry.type = tarfile.DIRTYPE
            entry.mode = 0o755
            tar.addfile(entry)
        for path, content in files.items():
            entry = tarfile.TarInfo(path)
            entry.size = len(content)
            entry.mode = 0o644
            tar.addfile(entry, io.BytesIO(content))
    partial.replace(target)


def sha256_digest(content: bytes) -> str:
    return f"sha256:{hashlib.sha256(content).hexdigest()}"


def descriptor(media_type: str, content: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256_digest(content), "size": len(content)}


def require_built() -> None:
    missing = [module.folder for module in GO_MODULES if not module.built()]
    images = [name for name in ("pause", "coredns") if not (IMAGES / f"{name}.tar").is_file()]
    if missing or images:
        raise NodeFailed(
            f"not built ({', '.join(missing + images)}): run `scripts/k8s_node.py build` first"
        )


# ---------------------------------------------------------------------------------------------
# the node's files


@dataclass(frozen=True, slots=True)
class Node:
    """Where one node keeps its state: certificates, configuration, pids, logs, data."""

    state: Path

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pids(self) -> Path:
        return self.state / "pids"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def containerd_socket(self) -> Path:
        return self.state / "containerd" / "containerd.sock"

    @property
    def host_file(self) -> Path:
        return self.state / "host.json"

    def kubectl(self, *args: str, input: bytes | None = None, timeout: float = 60) -> str:
        argv: list[str | Path] = [BIN / "kubectl", "--kubeconfig", self.kubeconfig, *args]
        return run(argv, input=input, timeout=timeout).stdout.decode()

    def ctr(self, *args: str, check: bool = True, input: bytes | None = None) -> str:
        argv: list[str | Path] = [
            "ctr",
            "--address",
            self.containerd_socket,
            "--namespace",
            "k8s.io",
        ]
        argv += args
        return run(argv, check=check, input=input, timeout=600).stdout.decode()


def node_ip() -> str:
    """The address of the interface of the default route: the node's InternalIP (the kubelet
    refuses a loopback one), where the API server and the kubelet listen."""
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "default"]).stdout)
    if not routes:
        raise NodeFailed("no default IPv4 route: cannot pick the node's address")
    device = routes[0]["dev"]
    addresses = json.loads(run(["ip", "-j", "-4", "addr", "show", "dev", device]).stdout)
    for entry in addresses:
        for info in entry.get("addr_info", []):
            if info.get("family") == "inet":
                return str(info["local"])
    raise NodeFailed(f"{device} has no IPv4 address")


def write(path: Path, content: str | bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    path.write_bytes(data)
    path.chmod(mode)
    return path


def write_json(path: Path, value: Any, mode: int = 0o644) -> Path:
    # JSON is YAML: the Kubernetes components read these config files either way.
    return write(path, json.dumps(value, indent=2) + "\n", mode)


@dataclass(frozen=True, slots=True)
class Certificate:
    name: str
    common_name: str
    organization: str = ""
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()


def make_pki(node: Node, ip: str) -> None:
    """A CA, the serving and client certificates of every component, and the service-account
    signing key: ECDSA P-256 throughout, made with the openssl CLI."""
    pki = node.pki
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = pki / "ca.key", pki / "ca.crt"
    run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ca_key])
    ca_argv: list[str | Path] = ["openssl", "req", "-x509", "-new", "-key", ca_key, "-sha256"]
    ca_argv += ["-days", "3650", "-subj", "/CN=shop-k8s-ca", "-out", ca_crt]
    ca_argv += ["-addext", "basicConstraints=critical,CA:TRUE"]
    ca_argv += ["-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"]
    run(ca_argv)
    api_names: tuple[str, ...] = ("kubernetes", "kubernetes.default", "kubernetes.default.svc")
    api_names += (f"kubernetes.default.svc.{CLUSTER_DOMAIN}", "localhost")
    certificates = (
        Certificate(
            "apiserver", "kube-apiserver", "", api_names, (ip, API_SERVICE_IP, "127.0.0.1")
        ),
        Certificate("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
        Certificate("admin", "kubernetes-admin", "system:masters"),
        Certificate("controller-manager", "system:kube-controller-manager"),
        Certificate("scheduler", "system:kube-scheduler"),
        Certificate("kube-proxy", "system:kube-proxy"),
        Certificate("kubelet-client", f"system:node:{NODE_NAME}", "system:nodes"),
        Certificate("kubelet", f"system:node:{NODE_NAME}", "system:nodes", (NODE_NAME,), (ip,)),
    )
    for cert in certificates:
        key, csr, crt = (pki / f"{cert.name}.{suffix}" for suffix in ("key", "csr", "crt"))
        run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key])
        subject = f"/O={cert.organization}/CN={cert.common_name}"
        if not cert.organization:
            subject = f"/CN={cert.common_name}"
        run(["openssl", "req", "-new", "-key", key, "-subj", subject, "-out", csr])
        extensions = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=serverAuth,clientAuth",
        ]
        names = [f"DNS:{name}" for name in cert.dns] + [f"IP:{ip}" for ip in cert.ips]
        if names:
            extensions.append("subjectAltName=" + ",".join(names))
        extfile = write(pki / f"{cert.name}.ext", "\n".join(extensions) + "\n")
        sign: list[str | Path] = ["openssl", "x509", "-req", "-in", csr, "-out", crt]
        sign += ["-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-CAserial", pki / "ca.srl"]
        sign += ["-sha256", "-days", "365", "-extfile", extfile]
        run(sign)
        csr.unlink()
        extfile.unlink()
    run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", pki / "sa.key"])
    run(["openssl", "ec", "-in", pki / "sa.key", "-pubout", "-out", pki / "sa.pub"])
    for key in pki.glob("*.key"):
        key.chmod(0o600)


def write_kubeconfig(node: Node, path: Path, name: str, server: str) -> None:
    pki = node.pki
    write_json(
        path,
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "shop-k8s",
                    "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
                }
            ],
            "users": [
                {
                    "name": name,
                    "user": {
                        "client-certificate": str(pki / f"{name}.crt"),
                        "client-key": str(pki / f"{name}.key"),
                    },
                }
            ],
            "contexts": [{"name": "shop-k8s", "context": {"cluster": "shop-k8s", "user": name}}],
            "current-context": "shop-k8s",
        },
        0o600,
    )


def containerd_config(node: Node) -> str:
    base = node.state / "containerd"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""\
version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "{node.containerd_socket}"

[ttrpc]
  address = "{node.containerd_socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # Containers here may not lower their OOM score (as Docker's note in shared/peers.md says).
  restrict_oom_score_adj = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{base}/runc"

[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{node.state}/cni/net.d"
  max_conf_num = 1
"""


def cni_config(node: Node) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(node.state / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(node: Node, ip: str) -> dict[str, Any]:
    pki = node.pki
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "tlsCertFile": str(pki / "kubelet.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{node.containerd_socket}",
        # No systemd runs here; and this host is on cgroup v1, which 1.34 still allows.
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "/etc/resolv.conf",
        "podLogsDir": str(node.state / "pod-logs"),
        "rotateCertificates": False,
        "serializeImagePulls": False,
        # Images come from `load` and are never pulled again: keep them, and never evict pods
        # for a disk the rest of the machine shares.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
            "imagefs.inodesFree": "1%",
        },
    }


def kube_proxy_config(node: Node) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(node.state / "kube-proxy.kubeconfig")},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "bindAddress": "0.0.0.0",
        "healthzBindAddress": f"127.0.0.1:{PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": "127.0.0.1:10249",
        # Leave the host's conntrack table and timeouts as they are.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        # NodePorts on 127.0.0.1 would need route_localnet=1 on the whole host.
        "iptables": {"localhostNodePorts": False},
        "nodePortAddresses": ["primary"],
    }


# ---------------------------------------------------------------------------------------------
# processes


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    argv: tuple[str, ...]
    ready: Callable[[], bool]
    timeout: float = 60


def components(node: Node, ip: str) -> list[Component]:
    """Every process of the node, in start order (each waits for the ones before it)."""
    pki, state = node.pki, node.state
    api = f"https://{ip}:{API_PORT}"
    etcd = f"http://127.0.0.1:{ETCD_CLIENT_PORT}"
    context = api_context(node)
    return [
        Component(
            "containerd",
            ("containerd", "--config", str(state / "containerd" / "config.toml")),
            lambda: socket_answers(node.containerd_socket),
        ),
        Component(
            "etcd",
            (
                str(BIN / "etcd"),
                "--name",
                NODE_NAME,
                "--data-dir",
                str(state / "etcd"),
                "--listen-client-urls",
                etcd,
                "--advertise-client-urls",
                etcd,
                "--listen-peer-urls",
                f"http://127.0.0.1:{ETCD_PEER_PORT}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{ETCD_PEER_PORT}",
                "--initial-cluster",
                f"{NODE_NAME}=http://127.0.0.1:{ETCD_PEER_PORT}",
                # A test node's data is thrown away with it: no need to wait for the disk.
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
                "--quota-backend-bytes",
                str(2 * 1024**3),
            ),
            lambda: http_ok(f"{etcd}/health"),
        ),
        Component(
            "kube-apiserver",
            (
                str(BIN / "kube-apiserver"),
                f"--advertise-address={ip}",
                f"--bind-address={ip}",
                f"--secure-port={API_PORT}",
                f"--etcd-servers={etcd}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=true",
                "--profiling=false",
                "--event-ttl=1h",
            ),
            lambda: https_ok(f"{api}/readyz", context),
            timeout=120,
        ),
        Component(
            "kube-controller-manager",
            (
                str(BIN / "kube-controller-manager"),
                f"--kubeconfig={state / 'controller-manager.kubeconfig'}",
                f"--authentication-kubeconfig={state / 'controller-manager.kubeconfig'}",
                f"--authorization-kubeconfig={state / 'controller-manager.kubeconfig'}",
                "--bind-address=127.0.0.1",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--profiling=false",
            ),
            lambda: https_ok("https://127.0.0.1:10257/healthz", insecure_context()),
        ),
        Component(
            "kube-scheduler",
            (
                str(BIN / "kube-scheduler"),
                f"--kubeconfig={state / 'scheduler.kubeconfig'}",
                f"--authentication-kubeconfig={state / 'scheduler.kubeconfig'}",
                f"--authorization-kubeconfig={state / 'scheduler.kubeconfig'}",
                "--bind-address=127.0.0.1",
                "--leader-elect=false",
                "--profiling=false",
            ),
            lambda: https_ok("https://127.0.0.1:10259/healthz", insecure_context()),
        ),
        Component(
            "kubelet",
            (
                str(BIN / "kubelet"),
                f"--config={state / 'kubelet.json'}",
                f"--kubeconfig={state / 'kubelet.kubeconfig'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={ip}",
                f"--root-dir={state / 'kubelet'}",
                f"--volume-plugin-dir={state / 'kubelet' / 'volume-plugins'}",
                # cAdvisor's own containerd client (for the containers' stats) looks at
                # /run/containerd, Docker's containerd's place, unless told.
                f"--containerd={node.containerd_socket}",
            ),
            lambda: http_ok(f"http://127.0.0.1:{KUBELET_HEALTHZ_PORT}/healthz"),
        ),
        Component(
            "kube-proxy",
            (str(BIN / "kube-proxy"), f"--config={state / 'kube-proxy.json'}"),
            lambda: http_ok(f"http://127.0.0.1:{PROXY_HEALTHZ_PORT}/healthz"),
        ),
    ]


def api_context(node: Node) -> Callable[[], ssl.SSLContext]:
    def make() -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(node.pki / "ca.crt"))
        context.load_cert_chain(node.pki / "admin.crt", node.pki / "admin.key")
        return context

    return make


def insecure_context() -> ssl.SSLContext:
    # The controller manager's and scheduler's health ports serve a self-signed certificate of
    # their own on 127.0.0.1; only whether they answer matters.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (this node)
            return bool(200 <= response.status < 300)
    except OSError:
        return False


def https_ok(url: str, context: ssl.SSLContext | Callable[[], ssl.SSLContext]) -> bool:
    made = context if isinstance(context, ssl.SSLContext) else context()
    try:
        with urllib.request.urlopen(url, timeout=2, context=made) as response:  # noqa: S310
            return bool(200 <= response.status < 300)
    except OSError:
        return False


def socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


def pid_of(node: Node, name: str) -> int | None:
    """The pid of the node's process `name`, if it still runs (and is still that program)."""
    try:
        pid = int((node.pids / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if alive(pid, name) else None


def alive(pid: int, name: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[0]
    program = Path(cmdline.split(b"\0")[0].decode(errors="replace")).name
    return state != "Z" and program == name


def start(node: Node, component: Component) -> None:
    node.logs.mkdir(parents=True, exist_ok=True)
    node.pids.mkdir(parents=True, exist_ok=True)
    with (node.logs / f"{component.name}.log").open("ab") as output:
        process = subprocess.Popen(
            component.argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=node.state,
            # Its own process group, which `down` signals as a whole; it outlives this command.
            start_new_session=True,
        )
    (node.pids / f"{component.name}.pid").write_text(str(process.pid))

    def ready() -> bool:
        if process.poll() is not None:
            raise NodeFailed(f"{component.name} exited with {process.returncode}")
        return component.ready()

    wait_for(component.name, ready, component.timeout)


def stop(node: Node, name: str, grace: float = 15) -> None:
    pid = pid_of(node, name)
    if pid is None:
        return
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid, name) and time.monotonic() < deadline:
        time.sleep(0.2)
    signal_group(pid, signal.SIGKILL)
    wait_gone([pid], 10)


def signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def wait_gone(pids: Iterable[int], timeout: float) -> None:
    remaining = list(pids)
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        remaining = [pid for pid in remaining if running(pid)]
        time.sleep(0.1)


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def node_processes(state: Path) -> list[int]:
    """The node's programs whose command line names its state folder, found without pid files."""
    needle = str(state).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        program = Path(cmdline.split(b"\0")[0].decode(errors="replace")).name
        if program in NODE_PROGRAMS and needle in cmdline:
            found.append(int(entry.name))
    return found


# ---------------------------------------------------------------------------------------------
# the host: packages, iptables, sysctls, mounts, cgroups


def install_packages() -> None:
    missing = [name for name in APT_PACKAGES if not installed(name)]
    if not missing:
        return
    log(f"installing {', '.join(missing)} (apt)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update"], env=env, timeout=600)
    run(
        ["apt-get", "install", "-y", "--no-install-recommends", *missing],
        env=env,
        timeout=900,
    )


def installed(package: str) -> bool:
    result = run(["dpkg-query", "-W", "-f=${Status}", package], check=False)
    return result.returncode == 0 and result.stdout.decode().endswith(" installed")


def iptables_rules(binary: str, table: str) -> list[str]:
    result = run([binary, "-w", "-t", table, "-S"], check=False)
    return result.stdout.decode().splitlines() if result.returncode == 0 else []


def owned_chains(binary: str) -> dict[str, list[str]]:
    chains: dict[str, list[str]] = {}
    for table in IPTABLES_TABLES:
        names = [
            line.split()[1] for line in iptables_rules(binary, table) if line.startswith("-N ")
        ]
        chains[table] = [name for name in names if name.startswith(OWNED_CHAIN_PREFIXES)]
    return chains


def forward_chain() -> str:
    # Docker's FORWARD policy drops what it does not know; DOCKER-USER is where it lets others in.
    rules = iptables_rules("iptables", "filter")
    return "DOCKER-USER" if "-N DOCKER-USER" in rules else "FORWARD"


def allow_pod_traffic() -> None:
    chain = forward_chain()
    tag = ["-m", "comment", "--comment", RULE_TAG]
    # Inserted in reverse: a Service address no rule of kube-proxy rewrote never leaves the
    # machine; everything else to and from the pods' bridge passes.
    rules = (
        ["-o", BRIDGE, "-j", "ACCEPT"],
        ["-i", BRIDGE, "-j", "ACCEPT"],
        ["-i", BRIDGE, "-d", SERVICE_CIDR, "-j", "REJECT"],
    )
    for rule in rules:
        run(["iptables", "-w", "-I", chain, *rule, *tag])


def remove_iptables(baseline: dict[str, dict[str, list[str]]]) -> None:
    """The rules `up` tagged, and the chains Kubernetes and CNI made since (not those that were
    there before `up`), with every rule that jumps to them."""
    for binary in ("iptables", "ip6tables"):
        if shutil.which(binary) is None:
            continue
        before = baseline.get(binary, {})
        for table in IPTABLES_TABLES:
            rules = iptables_rules(binary, table)
            chains = {
                line.split()[1]
                for line in rules
                if line.startswith("-N ") and line.split()[1].startswith(OWNED_CHAIN_PREFIXES)
            } - set(before.get(table, []))
            for line in rules:
                words = shlex.split(line)
                if words[:1] != ["-A"] or words[1] in chains:
                    continue
                target = words[words.index("-j") + 1] if "-j" in words else ""
                if target in chains or RULE_TAG in words:
                    run([binary, "-w", "-t", table, "-D", *words[1:]], check=False)
            for chain in chains:
                run([binary, "-w", "-t", table, "-F", chain], check=False)
            for chain in chains:
                run([binary, "-w", "-t", table, "-X", chain], check=False)


def nft_tables() -> list[str]:
    """The netfilter tables there are, as `FAMILY NAME` (iptables-nft makes them on first use)."""
    if shutil.which("nft") is None:
        return []
    result = run(["nft", "list", "tables"], check=False)
    lines = result.stdout.decode().splitlines() if result.returncode == 0 else []
    return [line.removeprefix("table ").strip() for line in lines if line.startswith("table ")]


def remove_empty_tables(before: Sequence[str]) -> None:
    """The iptables tables that were not there before `up` and hold no rule now (the kubelet
    makes mangle's for its canary chains)."""
    binaries = {"ip": "iptables", "ip6": "ip6tables"}
    for table in nft_tables():
        family, _, name = table.partition(" ")
        if table in before or family not in binaries or name not in IPTABLES_TABLES:
            continue
        rules = iptables_rules(binaries[family], name)
        if all(line.startswith("-P ") for line in rules):
            run(["nft", "delete", "table", family, name], check=False)


def read_sysctls() -> dict[str, str]:
    values = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            values[name] = Path("/proc/sys", name).read_text().strip()
    return values


def restore_sysctls(saved: dict[str, str]) -> None:
    for name, value in saved.items():
        path = Path("/proc/sys", name)
        with contextlib.suppress(OSError):
            if path.read_text().strip() != value:
                path.write_text(value)


def mounts_under(*folders: Path) -> list[str]:
    prefixes = [str(folder).rstrip("/") + "/" for folder in folders]
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if any(point.startswith(prefix) or point + "/" == prefix for prefix in prefixes):
            found.append(point)
    return found


def unmount_under(*folders: Path) -> None:
    # Deepest first, so a mount is never hidden under another; lazily when something holds it.
    for point in sorted(set(mounts_under(*folders)), key=lambda p: p.count("/"), reverse=True):
        if run(["umount", point], check=False).returncode != 0:
            run(["umount", "-l", point], check=False)


def kubepods_cgroups() -> list[Path]:
    """The kubelet's cgroups (it names its root `kubepods` under each hierarchy with cgroupfs)."""
    found: list[Path] = []
    if not CGROUP_ROOT.is_dir():
        return found
    for hierarchy in CGROUP_ROOT.iterdir():
        for name in ("kubepods", "kubepods.slice"):
            if (hierarchy / name).is_dir():
                found.append(hierarchy / name)
    return found


def cgroup_pids(cgroup: Path) -> set[int]:
    pids: set[int] = set()
    for procs in cgroup.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(line) for line in procs.read_text().split())
    return pids


def remove_cgroups(cgroups: Iterable[Path]) -> None:
    for cgroup in cgroups:
        folders = sorted(
            (path for path in cgroup.rglob("*") if path.is_dir()),
            key=lambda path: len(path.parts),
            reverse=True,
        )
        for folder in [*folders, cgroup]:
            with contextlib.suppress(OSError):
                folder.rmdir()


# ---------------------------------------------------------------------------------------------
# up


def up(node: Node, keep_on_failure: bool = False) -> None:
    require_root()
    require_built()
    if node.state.exists():
        if node_is_up(node):
            log(f"the node is up already ({node.state})")
            print(node.kubeconfig)
            return
        log(f"a node was left half up in {node.state}: taking it down first")
        down(node)
    elif Path(f"/sys/class/net/{BRIDGE}").exists():
        raise NodeFailed(f"{BRIDGE} exists already: another node runs here (down it first)")
    busy = [port for port in PORTS if port_in_use(port)]
    if busy:
        raise NodeFailed(f"ports in use: {busy} (another cluster or etcd runs here?)")
    install_packages()
    if not (CNI_BIN / "bridge").is_file():
        raise NodeFailed(f"no CNI bridge plugin in {CNI_BIN} (containernetworking-plugins)")
    # A unix socket's path has room for 107 bytes; containerd's ttrpc socket is the longest.
    if len(f"{node.containerd_socket}.ttrpc") > 100:
        raise NodeFailed(
            f"{node.state} is too deep for containerd's sockets: pick a shorter --state"
        )
    started = time.monotonic()
    node.state.mkdir(parents=True)
    try:
        bring_up(node)
    except BaseException:
        tails = "\n".join(log_tail(node, name) for name in PROCESSES)
        log(f"the node did not come up; its logs end with:\n{tails}")
        if not keep_on_failure:
            down(node)
        raise
    log(f"the node is up in {time.monotonic() - started:.0f}s")
    print(node.kubeconfig)


def bring_up(node: Node) -> None:
    ip = node_ip()
    record_host(node)
    log(f"certificates and configuration in {node.state} (node address {ip})")
    make_pki(node, ip)
    server = f"https://{ip}:{API_PORT}"
    write_kubeconfig(node, node.kubeconfig, "admin", server)
    for name in ("controller-manager", "scheduler", "kube-proxy"):
        write_kubeconfig(node, node.state / f"{name}.kubeconfig", name, server)
    write_kubeconfig(node, node.state / "kubelet.kubeconfig", "kubelet-client", server)
    write(node.state / "containerd" / "config.toml", containerd_config(node))
    write_json(node.state / "cni" / "net.d" / "10-shop-k8s.conflist", cni_config(node))
    write_json(node.state / "kubelet.json", kubelet_config(node, ip))
    write_json(node.state / "kube-proxy.json", kube_proxy_config(node))
    allow_pod_traffic()
    for component in components(node, ip):
        log(f"starting {component.name}")
        start(node, component)
        if component.name == "containerd":
            for image in ("pause", "coredns"):
                node.ctr("images", "import", str(IMAGES / f"{image}.tar"))
    wait_for("the node to be Ready", lambda: node_ready(node), 120, every=1)
    log("starting CoreDNS")
    manifest = json.dumps(coredns_manifest()).encode()
    node.kubectl("apply", "-f", "-", input=manifest)
    node.kubectl(
        "-n",
        "kube-system",
        "rollout",
        "status",
        "deployment/coredns",
        "--timeout=180s",
        timeout=200,
    )
    wait_for("kube-proxy to route the DNS Service", lambda: service_routed(DNS_SERVICE_IP), 60)
    wait_for("the cluster's DNS to answer", dns_answers, 60, every=1)


def record_host(node: Node) -> None:
    """What `down` puts back: the kernel settings, the chains and host folders there were."""
    baseline = {
        "sysctls": read_sysctls(),
        "chains": {
            binary: owned_chains(binary)
            for binary in ("iptables", "ip6tables")
            if shutil.which(binary)
        },
        "paths": {str(path): path.exists() for path in HOST_PATHS},
        "cgroups": [str(path) for path in kubepods_cgroups()],
        "netns": sorted(entry.name for entry in list_dir(Path("/run/netns"))),
        "nft_tables": nft_tables(),
    }
    write_json(node.host_file, baseline)


def list_dir(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def node_is_up(node: Node) -> bool:
    if not all(pid_of(node, name) for name in PROCESSES):
        return False
    try:
        return node_ready(node)
    except NodeFailed:
        return False


def node_ready(node: Node) -> bool:
    jsonpath = '{.status.conditions[?(@.type=="Ready")].status}'
    argv: list[str | Path] = [BIN / "kubectl", "--kubeconfig", node.kubeconfig]
    argv += ["get", "node", NODE_NAME]
    result = run([*argv, "-o", f"jsonpath={jsonpath}"], check=False, timeout=20)
    return result.returncode == 0 and result.stdout.decode().strip() == "True"


def service_routed(address: str) -> bool:
    return any(f"-d {address}/32" in line for line in iptables_rules("iptables", "nat"))


def dns_answers() -> bool:
    """The kube-dns Service answers kubernetes.default's A record with the API's Service IP."""
    answer = dns_query(DNS_SERVICE_IP, f"kubernetes.default.svc.{CLUSTER_DOMAIN}")
    return API_SERVICE_IP in answer


def dns_query(server: str, name: str, timeout: float = 2) -> list[str]:
    """The A records one UDP query to `server` returns for `name` (empty when none came)."""
    query_id = int.from_bytes(os.urandom(2), "big")
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    packet = struct.pack(">HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + question + b"\0"
    packet += struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(packet, (server, 53))
            reply = sock.recv(4096)
        except OSError:
            return []
    return parse_a_records(reply, query_id)


def parse_a_records(reply: bytes, query_id: int) -> list[str]:
    if len(reply) < 12:
        return []
    reply_id, _, questions, answers, _, _ = struct.unpack(">HHHHHH", reply[:12])
    if reply_id != query_id:
        return []
    offset = 12
    for _ in range(questions):
        offset = skip_name(reply, offset) + 4
    found = []
    for _ in range(answers):
        offset = skip_name(reply, offset)
        kind, _, _, length = struct.unpack(">HHIH", reply[offset : offset + 10])
        offset += 10
        if kind == 1 and length == 4:
            found.append(str(ipaddress.IPv4Address(reply[offset : offset + 4])))
        offset += length
    return found


def skip_name(message: bytes, offset: int) -> int:
    while True:
        length = message[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            return offset + 2
        offset += length + 1


def port_in_use(port: int) -> bool:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
            return True
    return False


def coredns_manifest() -> dict[str, Any]:
    labels = {"k8s-app": "kube-dns"}
    corefile = f"""\
.:53 {{
    errors
    health {{
        lameduck 5s
    }}
    ready
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
}}
"""
    metadata = {"name": "coredns", "namespace": "kube-system"}
    items: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", **metadata}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": {"Corefile": corefile},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**metadata, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "priorityClassName": "system-cluster-critical",
                        # The host's resolver, for names outside the cluster.
                        "dnsPolicy": "Default",
                        "containers": [
                            {
                                "name": "coredns",
                                "image": COREDNS_IMAGE,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                    {"name": "metrics", "containerPort": 9153},
                                ],
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "64Mi"},
                                    "limits": {"memory": "170Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                                },
                                "volumeMounts": [
                                    {
                                        "name": "config",
                                        "mountPath": "/etc/coredns",
                                        "readOnly": True,
                                    }
                                ],
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": 8080},
                                    "initialDelaySeconds": 10,
                                },
                                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}},
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                    {"name": "metrics", "port": 9153, "protocol": "TCP"},
                ],
            },
        },
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def log_tail(node: Node, name: str, lines: int = 15) -> str:
    try:
        content = (node.logs / f"{name}.log").read_text(errors="replace").splitlines()
    except OSError:
        return f"--- {name}: no log"
    return "\n".join([f"--- {name}", *content[-lines:]])


# ---------------------------------------------------------------------------------------------
# down


def down(node: Node, keep_logs: Path | None = None) -> None:
    require_root()
    state = node.state
    if not state.exists():
        log(f"no node in {state}: nothing to take down")
        return
    log(f"taking the node in {state} down")
    try:
        baseline = json.loads(node.host_file.read_text())
    except (OSError, ValueError):
        baseline = {}
    # Nothing may start or restart a container once the containers go.
    for name in ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"):
        stop(node, name)
    remove_containers(node)
    for name in ("containerd", "kube-apiserver", "etcd"):
        stop(node, name)
    # Whatever is left of the node: shims, pods' processes, anything started by hand against it.
    leftovers = set(node_processes(state))
    for cgroup in kubepods_cgroups():
        if str(cgroup) not in baseline.get("cgroups", []):
            leftovers |= cgroup_pids(cgroup)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    wait_gone(leftovers, 10)
    remove_network(baseline)
    unmount_under(state)
    remove_cgroups(
        cgroup for cgroup in kubepods_cgroups() if str(cgroup) not in baseline.get("cgroups", [])
    )
    restore_sysctls(baseline.get("sysctls", {}))
    remove_host_paths(state, baseline.get("paths", {}))
    if mounts_under(state):
        raise NodeFailed(f"still mounted under {state}: {mounts_under(state)}")
    if keep_logs is not None and node.logs.is_dir():
        shutil.copytree(node.logs, keep_logs, dirs_exist_ok=True)
    shutil.rmtree(state)
    log("the node is down")


def remove_containers(node: Node) -> None:
    """Every container of the node's containerd, killed and deleted, so their shims exit and
    unmount their root filesystems."""
    if pid_of(node, "containerd") is None:
        return
    tasks = node.ctr("tasks", "list", "--quiet", check=False).split()
    for task in tasks:
        node.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
    for task in tasks:
        node.ctr("tasks", "delete", "--force", task, check=False)
    containers = node.ctr("containers", "list", "--quiet", check=False).split()
    if containers:
        node.ctr("containers", "delete", *containers, check=False)


def remove_network(baseline: dict[str, Any]) -> None:
    """The pods' network namespaces, the bridge, and the iptables rules of the node."""
    before = set(baseline.get("netns", []))
    for entry in list_dir(Path("/run/netns")):
        if entry.name.startswith("cni-") and entry.name not in before:
            unmount_under(entry)
            run(["umount", str(entry)], check=False)
            with contextlib.suppress(OSError):
                entry.unlink()
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        run(["ip", "link", "delete", BRIDGE], check=False)
    if (BIN / "kube-proxy").is_file():
        run([BIN / "kube-proxy", "--cleanup"], check=False, timeout=60)
    remove_iptables(baseline.get("chains", {}))
    if "nft_tables" in baseline:
        remove_empty_tables(baseline["nft_tables"])


def remove_host_paths(state: Path, existed: dict[str, bool]) -> None:
    containers_logs = Path("/var/log/containers")
    for link in list_dir(containers_logs):
        with contextlib.suppress(OSError):
            if link.is_symlink() and str(state) in os.readlink(link):
                link.unlink()
    # The host-local IPAM data lives in the state folder; libcni still caches each sandbox's
    # results here, under the network's name (and containerd's loopback network's).
    caches = list_dir(Path("/var/lib/cni/results"))
    prefix = f"{CNI_NETWORK}-"
    sandboxes = {
        cache.name[len(prefix) :].split("-")[0] for cache in caches if cache.name.startswith(prefix)
    }
    for cache in caches:
        sandbox = cache.name.removeprefix(prefix).removeprefix("cni-loopback-").split("-")[0]
        if sandbox in sandboxes:
            with contextlib.suppress(OSError):
                cache.unlink()
    for path in HOST_PATHS:
        if existed.get(str(path), True) or not path.exists():
            continue
        # Only when empty: another runtime (Docker's containerd) may have put its own files here.
        for folder in sorted(
            (p for p in path.rglob("*") if p.is_dir() and not p.is_symlink()),
            key=lambda p: len(p.parts),
            reverse=True,
        ):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            path.rmdir()


# ---------------------------------------------------------------------------------------------
# load, status, kubectl


def load(node: Node, images: Sequence[str]) -> None:
    """Docker images into the node's containerd, for pods with `imagePullPolicy: Never`."""
    require_root()
    if pid_of(node, "containerd") is None:
        raise NodeFailed(f"the node in {node.state} is not up: run `up` first")
    for image in images:
        log(f"loading {image}")
        with subprocess.Popen([DOCKER, "save", image], stdout=subprocess.PIPE) as save:
            assert save.stdout is not None
            argv = ["ctr", "--address", str(node.containerd_socket), "--namespace", "k8s.io"]
            imported = subprocess.run(
                [*argv, "images", "import", "-"],
                stdin=save.stdout,
                capture_output=True,
                check=False,
            )
            save.stdout.close()
        if save.returncode != 0 or imported.returncode != 0:
            raise NodeFailed(f"loading {image} failed: {imported.stderr.decode().strip()}")


def status(node: Node) -> int:
    up_count = 0
    for name in PROCESSES:
        pid = pid_of(node, name)
        up_count += pid is not None
        print(f"{name:24} {'running, pid ' + str(pid) if pid else 'stopped'}")
    if up_count == len(PROCESSES) and node_ready(node):
        print(f"node {NODE_NAME} Ready; KUBECONFIG={node.kubeconfig}")
        return 0
    return 1


def kubectl(node: Node, args: Sequence[str]) -> None:
    if not node.kubeconfig.is_file():
        raise NodeFailed(f"no node in {node.state}: run `up` first")
    kubectl_binary = str(BIN / "kubectl")
    argv = [kubectl_binary, "--kubeconfig", str(node.kubeconfig), *args]
    os.execv(kubectl_binary, argv)  # noqa: S606 (this command becomes kubectl)


def require_root() -> None:
    if os.geteuid() != 0:
        raise NodeFailed("the node needs root (containerd, the kubelet, iptables, mounts)")


@contextlib.contextmanager
def failures() -> Iterator[None]:
    try:
        yield
    except NodeFailed as error:
        print(f"k8s_node: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def kubectl_arguments(args: Sequence[str]) -> tuple[Path, list[str]]:
    """`[--state DIR] [--] ARGS...`: everything else is kubectl's, options first included."""
    rest = list(args)
    state = DEFAULT_STATE
    if rest[:1] == ["--state"] and len(rest) > 1:
        state, rest = Path(rest[1]), rest[2:]
    elif rest[:1] and rest[0].startswith("--state="):
        state, rest = Path(rest[0].partition("=")[2]), rest[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return state, rest


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["kubectl"]:
        # Not through argparse, which would take kubectl's own options (-n, -A, -o) for ours.
        state, rest = kubectl_arguments(args[1:])
        with failures():
            kubectl(Node(state.resolve()), rest)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build the binaries and images (cached)")
    for name, help_text in (
        ("up", "start the node; prints the kubeconfig's path"),
        ("down", "stop the node and remove everything it added"),
        ("status", "which of the node's processes run"),
        ("load", "import local Docker images into the node"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--state", type=Path, default=DEFAULT_STATE, help="state folder")
        if name == "up":
            command.add_argument(
                "--keep-on-failure", action="store_true", help="leave a failed node for a look"
            )
        if name == "down":
            command.add_argument("--logs", type=Path, help="copy the node's logs here first")
        if name == "load":
            command.add_argument("images", nargs="+")
    commands.add_parser(
        "kubectl", help="kubectl with the node's kubeconfig: kubectl [--state DIR] [--] ARGS..."
    )
    options = parser.parse_args(args)
    with failures():
        if options.command == "build":
            build()
            return 0
        node = Node(options.state.resolve())
        if options.command == "up":
            up(node, options.keep_on_failure)
        elif options.command == "down":
            down(node, options.logs)
        elif options.command == "load":
            load(node, options.images)
        elif options.command == "status":
            return status(node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
