"""The Helm chart: it lints strictly, every ci/ value set renders manifests that Kubernetes'
schemas accept for each version the chart claims, kube-score and checkov find nothing that is not
skipped with its reason, and values.schema.json refuses what the chart would silently ignore."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import chart  # scripts/, put on sys.path by conftest.py
import pytest
import registry
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "shop"
VALUE_SETS = sorted((CHART / "ci").glob("*-values.yaml"))
SKIPPED = yaml.safe_load((CHART / "ci" / "skipped-checks.yaml").read_text())
TOOLS = ROOT / ".tools" / "bin"
CHECKOV = ("uv", "tool", "run", "--from", "checkov==3.2.495", "checkov")
# The oldest release the chart's kubeVersion admits, and the newest it is tested on.
KUBERNETES_VERSIONS = ("1.30.0", "1.34.0")


def _run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, input=stdin, capture_output=True, text=True, check=False, timeout=300
    )


def _ok(*argv: str, stdin: str | None = None) -> str:
    done = _run(*argv, stdin=stdin)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _template(values: Path, *extra: str) -> str:
    return _ok(str(TOOLS / "helm"), "template", "shop", str(CHART), "--namespace", "shop",
               "--values", str(values), *extra)  # fmt: skip


def _documents(rendered: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(rendered) if document]


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Kubernetes' JSON schemas as kubernetes-validate ships them, their `$ref`s made local files
    for kubeconform (no schema is fetched from the internet)."""
    import kubernetes_validate

    shipped = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    folder = tmp_path_factory.mktemp("schemas")
    for version in KUBERNETES_VERSIONS:
        target = folder / f"v{version}"
        target.mkdir()
        definitions = (target / "_definitions.json").as_uri()
        for schema in (shipped / f"v{version}-local-strict").glob("*.json"):
            text = schema.read_text().replace('"/api/_definitions.json#', f'"{definitions}#')
            target.joinpath(schema.name).write_text(text)
    return folder


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda path: path.stem)
def test_the_chart_lints_strictly(values: Path) -> None:
    _ok(str(TOOLS / "helm"), "lint", "--strict", str(CHART), "--values", str(values))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda path: path.stem)
def test_every_value_set_renders_manifests_kubernetes_accepts(
    values: Path, version: str, schemas: Path
) -> None:
    rendered = _template(values, "--kube-version", version)
    location = (
        schemas / "{{ .NormalizedKubernetesVersion }}" / "{{ .ResourceKind }}{{ .KindSuffix }}.json"
    )
    # Custom resources (ServiceMonitor, PrometheusRule) have no schema here: their shape is
    # checked by test_the_monitoring_objects_scrape_each_pod_once_and_carry_the_rules.
    report = _ok(str(TOOLS / "kubeconform"), "-strict", "-summary", "-output", "json",
                 "-kubernetes-version", version,
                 "-schema-location", str(location),
                 "-skip", "ServiceMonitor,PrometheusRule", stdin=rendered)  # fmt: skip
    summary = json.loads(report)["summary"]
    assert summary["invalid"] == 0, report
    assert summary["errors"] == 0, report
    assert summary["valid"] >= 20, report


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda path: path.stem)
def test_kube_score_finds_nothing_but_what_is_skipped_with_its_reason(values: Path) -> None:
    ignored = ",".join(SKIPPED["kube-score"]["tests"])
    done = _run(str(TOOLS / "kube-score"), "score", "--output-format", "ci",
                "--ignore-test", ignored, *SKIPPED["kube-score"]["flags"], "-",
                stdin=_template(values))  # fmt: skip
    problems = [
        line for line in done.stdout.splitlines() if line.startswith(("[CRITICAL]", "[WARNING]"))
    ]
    # (kube-score exits 1 on findings, 2 when it could not score at all)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "[OK]" in done.stdout, done.stdout + done.stderr
    assert not problems, "\n".join(problems) + done.stderr


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda path: path.stem)
def test_checkov_finds_nothing_but_what_is_skipped_with_its_reason(
    values: Path, tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(_template(values))
    report = _run(*CHECKOV, "--file", str(manifests), "--framework", "kubernetes", "--compact",
                  "--skip-download", "--output", "json",
                  "--skip-check", ",".join(SKIPPED["checkov"]))  # fmt: skip
    assert report.returncode == 0, report.stdout[-5000:] + report.stderr[-2000:]
    summary = json.loads(report.stdout)["summary"]
    assert summary["failed"] == 0, summary
    assert summary["passed"] > 100, summary


def test_every_skipped_check_gives_its_reason() -> None:
    reasons = [
        *SKIPPED["kube-score"]["tests"].values(),
        *SKIPPED["kube-score"]["flags"].values(),
        *SKIPPED["checkov"].values(),
    ]
    assert all(isinstance(reason, str) and len(reason) > 40 for reason in reasons)


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("services.orders.replicaz=3", "replicaz"),
        ("default.autoscaling.enabld=true", "enabld"),
        ("gateway.exporter.imag=x", "imag"),
        ("services.carts.resources.requests.cpuu=1", "cpuu"),
        ("services.gateway.replicas=1", "gateway"),
        ("default.preStopSeconds=0", "preStopSeconds"),
    ],
)
def test_the_schema_refuses_an_unknown_key_or_impossible_value_naming_it(
    setting: str, named: str
) -> None:
    done = _run(str(TOOLS / "helm"), "template", "shop", str(CHART),
                "--values", str(CHART / "ci" / "minimal-values.yaml"), "--set", setting)  # fmt: skip
    assert done.returncode != 0
    assert named in done.stderr


def test_a_call_to_no_service_fails_the_install_naming_it() -> None:
    done = _run(str(TOOLS / "helm"), "template", "shop", str(CHART),
                "--values", str(CHART / "ci" / "minimal-values.yaml"),
                "--set", "services.carts.calls={products,prices}")  # fmt: skip
    assert done.returncode != 0
    assert "services.carts.calls names prices" in done.stderr


def test_a_missing_secret_value_fails_the_install_naming_it() -> None:
    done = _run(str(TOOLS / "helm"), "template", "shop", str(CHART),
                "--values", str(CHART / "ci" / "minimal-values.yaml"),
                "--set", "secrets.values.STRIPE_API_KEY=")  # fmt: skip
    assert done.returncode != 0
    assert "secrets.values.STRIPE_API_KEY is required" in done.stderr


def test_every_service_of_the_registry_has_its_values_entry_with_the_gateways_prefixes() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    services = registry.load()
    assert set(values["services"]) == set(services)
    for name, service in services.items():
        assert values["services"][name]["prefixes"] == list(service.prefixes), name


def test_the_charts_copies_of_the_gateway_rules_and_dashboards_are_current() -> None:
    assert chart.stale(chart.rendered()) == []


def _deployments(rendered: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in rendered if doc["kind"] == "Deployment"}


def _settings(rendered: list[dict[str, Any]], deployment: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every variable a service's container gets, in order: its ConfigMap's, then its env."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    maps = {doc["metadata"]["name"]: doc for doc in rendered if doc["kind"] == "ConfigMap"}
    settings = [
        (name, value)
        for source in container.get("envFrom", [])
        for name, value in maps[source["configMapRef"]["name"]]["data"].items()
    ]
    return settings + [(item["name"], item.get("value")) for item in container["env"]]


def test_a_service_entry_overrides_the_default_even_with_false_or_zero() -> None:
    # default.autoscaling.enabled is true in this set; carts turns it off and asks for no pod
    rendered = _documents(_template(CHART / "ci" / "everything-values.yaml",
                                    "--set", "services.carts.autoscaling.enabled=false",
                                    "--set", "services.carts.replicas=0"))  # fmt: skip
    deployments = _deployments(rendered)
    # notifications is disabled over default.enabled: true
    assert "notifications" not in deployments
    # autoscaled services leave replicas to their HPA; carts has a fixed count, zero
    assert "replicas" not in deployments["orders"]["spec"]
    assert deployments["carts"]["spec"]["replicas"] == 0
    hpas = {doc["metadata"]["name"] for doc in rendered if doc["kind"] == "HorizontalPodAutoscaler"}
    assert hpas == set(deployments) - {"gateway", "carts"}


def test_a_plain_setting_overrides_a_shared_one_and_each_variable_is_set_once() -> None:
    rendered = _documents(_template(CHART / "ci" / "minimal-values.yaml",
                                    "--set", "services.orders.env.LOG_LEVEL=DEBUG"))  # fmt: skip
    for name, deployment in _deployments(rendered).items():
        settings = _settings(rendered, deployment)
        names = [variable for variable, _ in settings]
        assert len(names) == len(set(names)), name
        levels = [value for variable, value in settings if variable == "LOG_LEVEL"]
        assert levels == ["DEBUG" if name == "orders" else "INFO"]


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda path: path.stem)
def test_a_pod_is_given_longer_to_stop_than_its_pause_and_drain(values: Path) -> None:
    rendered = _documents(_template(values))
    behind_gateway = any(name == "gateway" for name in _deployments(rendered))
    for name, deployment in _deployments(rendered).items():
        if name == "gateway":
            continue
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = dict(_settings(rendered, deployment))
        pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pod["terminationGracePeriodSeconds"] > pause + int(env["SHUTDOWN_TIMEOUT"])
        # behind the gateway, the pause outlasts the cluster DNS's cache and the gateway's look
        assert pause >= (35 if behind_gateway else 10), name


def test_a_service_takes_calls_only_from_its_callers_the_gateway_and_the_scraper() -> None:
    rendered = _documents(_template(CHART / "ci" / "everything-values.yaml"))
    policies = {doc["metadata"]["name"]: doc for doc in rendered if doc["kind"] == "NetworkPolicy"}
    values = yaml.safe_load((CHART / "values.yaml").read_text())  # its network policy defaults
    [allowed] = policies["payments"]["spec"]["ingress"]
    names = {
        peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
        for peer in allowed["from"]
    }
    # orders calls payments and the gateway fronts it; carts and products never call it
    assert {"orders", "gateway"} <= names
    assert not {"carts", "products"} & names
    # the scraper may read its metrics; the ingress controller reaches only the gateway
    assert values["networkPolicy"]["metricsFrom"][0] in allowed["from"]
    assert values["networkPolicy"]["ingressFrom"][0] not in allowed["from"]


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda path: path.stem)
def test_a_service_may_reach_every_service_its_settings_name(values: Path) -> None:
    rendered = _documents(_template(values))
    policies = {doc["metadata"]["name"]: doc for doc in rendered if doc["kind"] == "NetworkPolicy"}
    for name, deployment in _deployments(rendered).items():
        if name == "gateway":
            continue
        called = {
            match
            for _, value in _settings(rendered, deployment)
            for match in re.findall(r"^http://([a-z]+):8000", value or "")
        }
        reached = {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            for rule in policies[name]["spec"]["egress"]
            for peer in rule.get("to", [])
            if "podSelector" in peer
        }
        # (users reads its own signing keys, not its JWKS_URL)
        assert called - {name} <= reached, name


def test_the_monitoring_objects_scrape_each_pod_once_and_carry_the_rules() -> None:
    rendered = _documents(_template(CHART / "ci" / "everything-values.yaml"))
    monitors = [doc for doc in rendered if doc["kind"] == "ServiceMonitor"]
    services = [doc for doc in rendered if doc["kind"] == "Service"]
    for monitor in monitors:
        wanted = monitor["spec"]["selector"]["matchLabels"]
        selected = [s for s in services if wanted.items() <= s["metadata"]["labels"].items()]
        pods = [tuple(sorted(s["spec"]["selector"].items())) for s in selected]
        assert len(pods) == len(set(pods)), [s["metadata"]["name"] for s in selected]
        assert all(endpoint["port"] in {p["name"] for s in selected for p in s["spec"]["ports"]}
                   for endpoint in monitor["spec"]["endpoints"])  # fmt: skip
    [rules] = [doc for doc in rendered if doc["kind"] == "PrometheusRule"]
    shipped = [
        group["name"]
        for path in sorted((ROOT / "observability" / "prometheus" / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
    ]
    assert sorted(group["name"] for group in rules["spec"]["groups"]) == sorted(shipped)
