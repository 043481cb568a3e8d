"""The registry of services refuses what the stack and the gateway could not run; new-service dry runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import new_service  # scripts/, put on sys.path by conftest.py
import pytest
import registry

ROOT = Path(__file__).resolve().parent.parent
# What new-service reads and edits beside the service's own folder.
EDITED = (
    "pyproject.toml",
    "services/registry.toml",
    "compose",
    "observability",
    "dashboards",
    "charts",
)


def _copy_what_new_service_edits(root: Path) -> None:
    for name in EDITED:
        source, target = ROOT / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)


def _files(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


def test_the_shops_registry_loads_and_routes_every_service() -> None:
    services = registry.load()
    assert {"users", "products"} <= set(services)
    assert all(service.instances >= 1 for service in services.values())


def test_a_service_with_affinity_is_balanced_by_a_consistent_hash_of_its_key(
    tmp_path: Path,
) -> None:
    import gateway

    config = gateway.render(8080, {"carts": ["127.0.0.1:1", "127.0.0.1:2"]}, tmp_path)

    upstream = config[config.index("upstream carts {") :]
    upstream = upstream[: upstream.index("}")]
    assert "hash $http_authorization$http_x_cart_token consistent;" in upstream


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[a1]\nports = [1]\n[b1]\nports = [1]\n", "port 1 is both a1's and b1's"),
        ('[a1]\nports = [1]\nprefixes = ["x"]\n[b1]\nports = [2]\nprefixes = ["x"]\n', "prefix x"),
        ("[a1]\nports = [1]\nreplicas = 3\n", "unknown keys"),
        ("[a1]\nports = []\n", "ports must be"),
        ("[Users]\nports = [1]\n", "lower-case"),
        ('[a1]\nports = [1]\naffinity = "$remote_addr; deny all"\n', "affinity is nginx variables"),
    ],
)
def test_an_impossible_registry_is_refused_naming_the_service(text: str, complaint: str) -> None:
    with pytest.raises(registry.RegistryError, match=complaint):
        registry.parse(text)


def test_a_dry_run_prints_the_plan_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _copy_what_new_service_edits(tmp_path)
    before = _files(tmp_path)

    new_service.main(["ledger", "--root", str(tmp_path), "--dry-run"])

    printed = capsys.readouterr().out
    assert "services/ledger/src/ledger/app.py" in printed
    assert "+ledger = { workspace = true }" in printed
    assert _files(tmp_path) == before
    assert not (tmp_path / "services" / "ledger").exists()


def test_an_existing_service_is_not_made_again(tmp_path: Path) -> None:
    (tmp_path / "services").mkdir()
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copy(ROOT / "services" / "registry.toml", tmp_path / "services" / "registry.toml")

    with pytest.raises(SystemExit, match="already a service"):
        new_service.main(["users", "--root", str(tmp_path)])
