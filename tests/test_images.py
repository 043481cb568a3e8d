"""The services' one image recipe: lint clean, built for real on the stand-in base (no registry
here), and a service running from it read-only, as a non-root user, healthy by its own check."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import registry
from e2e_support import ROOT, run_instances

from shopkit.settings import read_env_file

DOCKER = "/usr/bin/docker"  # Debian's CLI: BuildKit through it works without buildx
BASE = "shop-python-base:bookworm"
CHECKOV = ("uv", "tool", "run", "--from", "checkov==3.2.495", "checkov")
# What run_instances sets beside .env.example and the test's own settings.
SET_BY_RUN_INSTANCES = ("SERVICE_NAME", "MONGO_DATABASE", "LOG_LEVEL", "PORT")


def _run(*argv: str) -> str:
    done = subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="session")
def base_image() -> str:
    return _run("bash", "scripts/base-image.sh", BASE).splitlines()[-1]


def _build(base_image: str, service: str, *, apm: bool = False) -> str:
    tag = f"shop-{service}:{'test-apm' if apm else 'test'}"
    _run(
        DOCKER, "build", "--quiet", "--file", "services/Dockerfile",
        "--build-arg", f"PYTHON_IMAGE={base_image}", "--build-arg", f"SERVICE={service}",
        "--build-arg", f"APM={str(apm).lower()}", "--tag", tag, ".",
    )  # fmt: skip
    return tag


@pytest.fixture(scope="session")
def users_image(base_image: str) -> str:
    return _build(base_image, "users")


@pytest.fixture
def users_container(
    users_image: str,
    mongo_url: str,
    nats_url: str,
    database_names: set[str],
    tmp_path: Path,
) -> Iterator[tuple[str, str]]:
    """One users instance from the image, on the host's network (its peers listen on loopback),
    hardened as compose and Helm run it; (its address, its container name)."""
    env = {"MONGO_URL": mongo_url, "NATS_URL": nats_url}
    names = {*read_env_file(ROOT / ".env.example"), *env, *SET_BY_RUN_INSTANCES}
    container = "shop-test-users-" + uuid.uuid4().hex[:8]
    argv = [
        DOCKER, "run", "--rm", "--name", container, "--network", "host",
        "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        *(option for name in sorted(names) for option in ("--env", name)),
        users_image,
    ]  # fmt: skip
    instances = run_instances("users", env, tmp_path, database_names, 1, argv=argv)
    [address] = next(instances)
    try:
        yield address, container
    finally:
        instances.close()


@pytest.mark.parametrize("service", sorted(registry.load()))
def test_every_service_of_the_registry_builds_from_the_one_recipe_and_enters_by_its_script(
    base_image: str, service: str
) -> None:
    image = _build(base_image, service)

    entry = _run(DOCKER, "run", "--rm", "--entrypoint", "readlink", image, "/app/bin/service")

    assert entry == f"/app/bin/{service}"
    _run(DOCKER, "run", "--rm", "--entrypoint", "python3", image, "-c", f"import {service}")


def test_the_dockerfile_is_hadolint_clean() -> None:
    _run(str(ROOT / ".venv" / "bin" / "hadolint"), "services/Dockerfile")


def test_the_dockerfile_is_checkov_clean_with_each_skip_explained() -> None:
    # checkov pins dozens of libraries of its own: it runs from uv's tool cache, not the workspace.
    # --skip-download: no guideline links from Prisma Cloud (unreachable here, and not needed).
    report = _run(*CHECKOV, "--file", "services/Dockerfile", "--framework", "dockerfile",
                  "--compact", "--skip-download", "--output", "json")  # fmt: skip
    summary = json.loads(report)["summary"]
    assert summary["failed"] == 0, report
    skipped = json.loads(report)["results"]["skipped_checks"]
    assert all(check["check_result"]["suppress_comment"].strip() for check in skipped), skipped


def test_the_image_carries_the_service_but_neither_build_tools_nor_dev_dependencies(
    users_image: str,
) -> None:
    check = (
        "import importlib.util as u, os;"
        "print(u.find_spec('users') is not None, u.find_spec('pytest') is None,"
        " os.path.exists('/opt/uv'), os.path.exists('/src'), u.find_spec('elasticapm') is None)"
    )
    found = _run(DOCKER, "run", "--rm", "--entrypoint", "python3", users_image, "-c", check)
    # (the APM agent only when the build asks for it: the next test)
    assert found == "True True False False True"


def test_the_apm_build_argument_adds_the_apm_agent_from_the_lock_file(base_image: str) -> None:
    image = _build(base_image, "users", apm=True)
    check = "import elasticapm, users; print(elasticapm.VERSION)"
    found = _run(DOCKER, "run", "--rm", "--entrypoint", "python3", image, "-c", check)
    locked = re.search(r'name = "elastic-apm"\nversion = "([^"]+)"', (ROOT / "uv.lock").read_text())
    assert locked is not None
    assert found == locked.group(1)


async def test_a_service_runs_from_its_image_read_only_as_a_non_root_user_and_healthy(
    users_container: tuple[str, str],
) -> None:
    address, container = users_container

    async with aiohttp.ClientSession() as http, http.get(f"http://{address}/healthz") as answer:
        assert answer.status == 200

    assert _run(DOCKER, "exec", container, "id", "-u") == "10001"
    assert (
        _run(DOCKER, "inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", container) == "true"
    )
    deadline = time.monotonic() + 60
    health = ""
    while time.monotonic() < deadline:
        health = _run(DOCKER, "inspect", "--format", "{{.State.Health.Status}}", container)
        if health != "starting":
            break
        await asyncio.sleep(1)
    assert health == "healthy"
