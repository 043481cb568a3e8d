"""The Helm chart: it lints strictly, every ci/ value set renders manifests that Kubernetes'
schemas accept for each version the chart claims, kube-score and checkov find nothing that is not
skipped with its reason, and values.schema.json refuses what the chart would silently ignore."""

from __future__ import annotations

import json
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
    # Custom resources (ServiceMonitor, PrometheusRule) have no schema here: checked below.
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


def test_every_skipped_check_gives_its_reason() -> None:
    reasons = [
        *SKIPPED["kube-score"]["tests"].values(),
        *SKIPPED["kube-score"]["flags"].values(),
        *SKIPPED["checkov"].values(),
    ]
    assert all(isinstance(reason, str) and len(reason) > 40 for reason in reasons)


def test_the_schema_refuses_an_unknown_key_naming_it() -> None:
    done = _run(str(TOOLS / "helm"), "template", "shop", str(CHART),
                "--values", str(CHART / "ci" / "minimal-values.yaml"),
                "--set", "services.orders.replicaz=3")  # fmt: skip
    assert done.returncode != 0
    assert "replicaz" in done.stderr


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


def test_a_service_entry_overrides_the_default_even_with_false_or_zero() -> None:
    rendered = _documents(_template(CHART / "ci" / "everything-values.yaml"))
    deployments = {doc["metadata"]["name"]: doc for doc in rendered if doc["kind"] == "Deployment"}
    # notifications is disabled over default.enabled: true; autoscaling drops the fixed replicas
    assert "notifications" not in deployments
    assert "replicas" not in deployments["orders"]["spec"]
    hpas = {doc["metadata"]["name"] for doc in rendered if doc["kind"] == "HorizontalPodAutoscaler"}
    assert hpas == set(deployments) - {"gateway"}


def test_a_pod_is_given_longer_to_stop_than_its_pause_and_drain() -> None:
    rendered = _documents(_template(CHART / "ci" / "minimal-values.yaml"))
    for deployment in (doc for doc in rendered if doc["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {item["name"]: item.get("value") for item in container["env"]}
        pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pod["terminationGracePeriodSeconds"] > pause + int(env["SHUTDOWN_TIMEOUT"])


def test_a_service_takes_calls_only_from_its_callers_the_gateway_ingress_and_scraper() -> None:
    rendered = _documents(_template(CHART / "ci" / "everything-values.yaml"))
    policies = {doc["metadata"]["name"]: doc for doc in rendered if doc["kind"] == "NetworkPolicy"}
    peers = [
        peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
        for peer in policies["payments"]["spec"]["ingress"][0]["from"]
    ]
    # orders calls payments; the gateway fronts it; carts and products never call it
    assert {"orders", "gateway"} <= set(peers)
    assert not {"carts", "products"} & set(peers)
    egress = [
        rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for rule in policies["carts"]["spec"]["egress"]
        if "to" in rule
    ]
    assert sorted(egress) == ["products", "users"]
