"""`./task new-service -- NAME`: a minimal service from the kit, its registry entry, workspace
lines, compose block, Prometheus job and ServiceAbsent term, the compose gateway and the dashboards
re-rendered."""

from __future__ import annotations

import argparse
import difflib
import json
import re
import tomllib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

import chart
import dashboards
import gateway
import registry
import yaml

ROOT = Path(__file__).resolve().parent.parent
INSTANCES = 2

PYPROJECT = """\
[project]
name = "$name"
version = "0.1.0"
description = "The $name service"
requires-python = ">=3.11"
dependencies = ["shopkit"]

[project.scripts]
$name = "$name.__main__:main"

[tool.uv.sources]
shopkit = { workspace = true }

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/$name"]
"""

INIT = '''\
"""The $name service."""
'''

MAIN = '''\
"""Entry point: `$name` (or `python -m $name`) serves the $name API with settings from the environment."""

from $name.app import create_app
from $name.settings import ${Title}Settings
from shopkit import app


def main() -> None:
    app.main(${Title}Settings, create_app)


if __name__ == "__main__":
    main()
'''

SETTINGS = '''\
"""The $name service's settings: the kit's, under its own name."""

from __future__ import annotations

from dataclasses import dataclass

from shopkit.settings import KitSettings, env


@dataclass(frozen=True, slots=True, kw_only=True)
class ${Title}Settings(KitSettings):
    service_name: str = env(
        "SERVICE_NAME", "$name", help="service name used in logs, metrics and events"
    )
'''

KEYS = '''\
"""Typed app state of the $name service."""

from __future__ import annotations

from aiohttp import web

from $name.settings import ${Title}Settings
from shopkit.events import EventStore

SETTINGS = web.AppKey("$name.settings", ${Title}Settings)
EVENTS = web.AppKey("$name.events", EventStore)
'''

EVENTS = '''\
"""The events the $name service publishes (subject `shop.$name.<type>`) and their payloads."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shopkit.events import Payload


class NoteEvent(StrEnum):
    ADDED = "note.added"


@dataclass(frozen=True, slots=True)
class NoteAdded(Payload):
    id: str
    text: str
    author: str
'''

SCHEMAS = '''\
"""What the $name API accepts."""

from __future__ import annotations

from marshmallow import fields, validate

from shopkit.schemas import Schema


class NoteSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(min=1, max=1000))
'''

ROUTES = '''\
"""HTTP handlers of the $name service."""

from __future__ import annotations

from aiohttp import web

from $name.events import NoteAdded, NoteEvent
from $name.keys import EVENTS
from $name.schemas import NoteSchema
from shopkit.auth import principal
from shopkit.idempotency import idempotent
from shopkit.ids import new_id
from shopkit.openapi import IDEMPOTENCY_KEY_REQUIRED, Operation
from shopkit.schemas import load_body

routes = web.RouteTableDef()
# What the OpenAPI document says of each handler: body, success status, headers.
OPERATIONS = {
    "add_note": Operation(body=NoteSchema, statuses=(201,), headers=(IDEMPOTENCY_KEY_REQUIRED,))
}


@routes.post("/api/v1/$name/notes")
@idempotent()
async def add_note(request: web.Request) -> web.Response:
    """Add a note; the `note.added` event reaches other services through the outbox."""
    body = await load_body(request, NoteSchema())
    note = NoteAdded(id=new_id(), text=body["text"], author=principal(request).subject)
    await request.app[EVENTS].append(f"note-{note.id}", 0, NoteEvent.ADDED, note.to_json())
    return web.json_response(note.to_json(), status=201)
'''

APP = '''\
"""The $name service, wired: kit defaults, its event store, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from $name.keys import EVENTS, SETTINGS
from $name.routes import OPERATIONS, routes
from $name.settings import ${Title}Settings
from shopkit.app import Api, build_app
from shopkit.auth import KeySource
from shopkit.events import EventStore
from shopkit.keys import DB


def create_app(
    settings: ${Title}Settings, *, keys: Callable[[web.Application], KeySource] | None = None
) -> web.Application:
    """`keys` overrides where access tokens are verified from (the JWKS URL by default)."""
    app = build_app(
        settings,
        settings_key=SETTINGS,
        keys=keys,
        api=Api("$name", operations=OPERATIONS),
        idempotency_keys=True,
        outbox=True,
    )

    async def events_ctx(app: web.Application) -> AsyncIterator[None]:
        app[EVENTS] = EventStore(app[DB])
        yield

    app.cleanup_ctx.append(events_ctx)
    app.router.add_routes(routes)
    return app
'''

TESTS = '''\
"""The $name service on loopback against this test's own database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from $name.app import create_app
from $name.settings import ${Title}Settings
from shopkit.settings import load
from shopkit.testing.tokens import TokenFactory

Serve = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


async def test_a_signed_in_caller_adds_a_note_once_per_idempotency_key(
    serve: Serve, service_env: dict[str, str]
) -> None:
    tokens = TokenFactory()
    client = await serve(create_app(load(${Title}Settings, service_env), keys=tokens.keys()))
    headers = {**tokens.header("user-1"), "Idempotency-Key": "note-1"}

    first = await client.post("/api/v1/$name/notes", json={"text": "hello"}, headers=headers)
    again = await client.post("/api/v1/$name/notes", json={"text": "hello"}, headers=headers)

    assert first.status == 201
    assert (await again.json())["id"] == (await first.json())["id"]


async def test_an_anonymous_caller_cannot_add_a_note(
    serve: Serve, service_env: dict[str, str]
) -> None:
    client = await serve(create_app(load(${Title}Settings, service_env)))

    response = await client.post("/api/v1/$name/notes", json={"text": "hello"})

    assert response.status == 401
'''

FILES = {
    "pyproject.toml": PYPROJECT,
    "src/$name/__init__.py": INIT,
    "src/$name/__main__.py": MAIN,
    "src/$name/settings.py": SETTINGS,
    "src/$name/keys.py": KEYS,
    "src/$name/events.py": EVENTS,
    "src/$name/schemas.py": SCHEMAS,
    "src/$name/routes.py": ROUTES,
    "src/$name/app.py": APP,
    "tests/test_$name.py": TESTS,
}


# The service's block in compose/compose.yaml, the same as the shop's own (those add their
# peers' URLs and secrets to `environment`).
COMPOSE_BLOCK = """\
  $name:
    <<: *service
    image: shop-$name:$${SHOP_TAG:-latest}
    build:
      context: ..
      dockerfile: services/Dockerfile
      args: {SERVICE: $name, PYTHON_IMAGE: *python-image}
    environment:
      <<: *service-environment

"""
GATEWAY_DEPENDENCY = "      $name: {condition: service_healthy}\n"
# Its override in compose/local.yaml: the stand-in base, and the stand-in MongoDB's address.
LOCAL_OVERRIDE = """\
  $name:
    build: {args: {PYTHON_IMAGE: *standin-base}}
    environment: *standin-environment
"""
# Its scrape job in compose/prometheus.yml, found through Docker's DNS like the others.
SCRAPE_JOB = """\
  - job_name: $name
    dns_sd_configs: [{names: [$name], type: A, port: 8000, refresh_interval: 15s}]
"""
ALERTS = Path("observability") / "prometheus" / "rules" / "alerts.yml"
# The Helm chart's values: the service's entry in `services` (its copies in files/ re-rendered).
CHART_VALUES = Path("charts") / "shop" / "values.yaml"


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything the new service needs: its files, and the new text of the shared files."""

    files: dict[Path, str]
    edits: dict[Path, tuple[str, str]]


def _next_ports(services: Sequence[registry.Service]) -> list[int]:
    """The first free block of ten after every port in use (8101, 8111, ... then 8121)."""
    highest = max((port for service in services for port in service.ports), default=8090)
    start = (highest // 10 + 1) * 10 + 1
    return list(range(start, start + INSTANCES))


def _add_member(pyproject: str, name: str) -> str:
    """The root project depends on every member (what `uv sync` installs) from the workspace."""
    dependencies = re.search(r"^dependencies = \[(.*)\]$", pyproject, flags=re.MULTILINE)
    sources = pyproject.find("[tool.uv.sources]\n")
    if dependencies is None or sources < 0:
        raise SystemExit("pyproject.toml: no one-line `dependencies = [...]` or [tool.uv.sources]")
    end_of_sources = pyproject.find("\n\n", sources)
    end_of_sources = len(pyproject.rstrip("\n")) if end_of_sources < 0 else end_of_sources
    text = (
        pyproject[: dependencies.end(1)]
        + f', "{name}"'
        + pyproject[dependencies.end(1) : end_of_sources]
        + f"\n{name} = {{ workspace = true }}"
        + pyproject[end_of_sources:]
    )
    parsed = tomllib.loads(text)
    assert name in parsed["project"]["dependencies"]
    assert parsed["tool"]["uv"]["sources"][name] == {"workspace": True}
    return text


def _add_to_compose(compose: str, name: str, others: Collection[str]) -> str:
    """The service's block before the gateway's (and the comment lines above it), and the
    service in the gateway's `depends_on` after the last service there (`others`: the
    registry's services before this one)."""
    values = {"name": name}
    lines = compose.splitlines(keepends=True)
    if "  gateway:\n" not in lines:
        raise SystemExit("compose/compose.yaml: no `  gateway:` line to add the service before")
    at = lines.index("  gateway:\n")
    while at > 0 and lines[at - 1].startswith("  #"):
        at -= 1
    lines.insert(at, Template(COMPOSE_BLOCK).substitute(values))
    gateway_at = lines.index("  gateway:\n")
    end = next(
        (i for i in range(gateway_at + 1, len(lines)) if re.match(r"^  [a-z#]", lines[i])),
        len(lines),
    )
    depends = [i for i in range(gateway_at, end) if lines[i] == "    depends_on:\n"]
    peers = re.compile(r"^      [a-z][a-z0-9-]*: \{condition: service_healthy\}\n$")
    if depends:
        last = depends[0]
        while last + 1 < end and peers.match(lines[last + 1]):
            last += 1
        if last > depends[0]:
            lines.insert(last + 1, Template(GATEWAY_DEPENDENCY).substitute(values))
    text = "".join(lines)
    try:
        services = yaml.safe_load(text)["services"]
        built = services[name]["build"]["args"]["SERVICE"]
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise SystemExit(f"compose/compose.yaml: adding {name} breaks it ({error!r})") from None
    if built != name:
        raise SystemExit(f"compose/compose.yaml: {name}'s block does not build {name}")
    waits_for = services.get("gateway", {}).get("depends_on") or {}
    if set(others) & set(waits_for) and name not in waits_for:
        raise SystemExit(f"compose/compose.yaml: could not add {name} to the gateway's depends_on")
    return text


def _add_local_override(local: str, name: str, others: Collection[str]) -> str:
    """The service's override after the last service's in compose/local.yaml (`others`: the
    registry's services before this one), so the platform runs on the stand-ins without it."""
    lines = local.splitlines(keepends=True)
    starts = [lines.index(f"  {other}:\n") for other in others if f"  {other}:\n" in lines]
    if not starts:
        raise SystemExit("compose/local.yaml: no service's override to add the new one after")
    at = max(starts) + 1
    while at < len(lines) and lines[at].startswith("    "):
        at += 1
    lines.insert(at, Template(LOCAL_OVERRIDE).substitute(name=name))
    text = "".join(lines)
    try:
        override = yaml.safe_load(text)["services"][name]
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise SystemExit(f"compose/local.yaml: adding {name} breaks it ({error!r})") from None
    if "MONGO_URL" not in override.get("environment", {}):
        raise SystemExit(f"compose/local.yaml: {name}'s override has no stand-in MONGO_URL")
    return text


def _add_scrape_job(config: str, name: str, others: Collection[str]) -> str:
    """The service's job after the last job of a registry service (`others`), so before the
    gateway's and its comment."""
    lines = config.splitlines(keepends=True)
    jobs = [i for i, line in enumerate(lines) if line.rstrip("\n") in _job_lines(others)]
    if not jobs:
        raise SystemExit(
            f"compose/prometheus.yml: no `  - job_name:` of a registry service to add {name}'s after"
        )
    at = jobs[-1] + 1
    while at < len(lines) and not re.match(r"^(  [-#]|\S)", lines[at]):
        at += 1
    lines.insert(at, Template(SCRAPE_JOB).substitute(name=name))
    text = "".join(lines)
    try:
        jobs_by_name = {job["job_name"]: job for job in yaml.safe_load(text)["scrape_configs"]}
        [discovery] = jobs_by_name[name]["dns_sd_configs"]
        found = (discovery["names"], discovery["type"], discovery["port"])
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        raise SystemExit(f"compose/prometheus.yml: adding {name} breaks it ({error!r})") from None
    if found != ([name], "A", 8000):
        raise SystemExit(f"compose/prometheus.yml: {name}'s job does not find {name}:8000 by DNS")
    return text


def _job_lines(services: Collection[str]) -> set[str]:
    return {f"  - job_name: {service}" for service in services}


def _add_absent_term(alerts: str, name: str) -> str:
    """`or absent(up{job="NAME"})` on its own line before nginx's, the last of ServiceAbsent."""
    lines = alerts.splitlines(keepends=True)
    if "      - alert: ServiceAbsent\n" not in lines:
        raise SystemExit(f"{ALERTS}: no `      - alert: ServiceAbsent` rule")
    start = lines.index("      - alert: ServiceAbsent\n")
    nginx = re.compile(r'^( +)or absent\(up\{job="nginx"\}\)\n$')
    found = next(
        ((i, match) for i in range(start, len(lines)) if (match := nginx.match(lines[i]))), None
    )
    if found is None or any(line.startswith("      - ") for line in lines[start + 1 : found[0]]):
        raise SystemExit(
            f'{ALERTS}: ServiceAbsent\'s expr has no line `or absent(up{{job="nginx"}})` to add'
            f" {name}'s before"
        )
    at, match = found
    lines.insert(at, f'{match.group(1)}or absent(up{{job="{name}"}})\n')
    text = "".join(lines)
    try:
        rules = [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]
        [absent] = [rule["expr"] for rule in rules if rule.get("alert") == "ServiceAbsent"]
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        raise SystemExit(f"{ALERTS}: adding {name} breaks it ({error!r})") from None
    if f'absent(up{{job="{name}"}}) or absent(up{{job="nginx"}})' not in absent:
        raise SystemExit(f"{ALERTS}: {name} is not in ServiceAbsent's expr")
    return text


def _dashboards(
    root: Path, name: str, before: Sequence[str], after: Sequence[str]
) -> dict[Path, tuple[str | None, str]]:
    """The dashboard files the new registry renders otherwise than the old (the service's own and
    the overview), with their current text (None: new)."""
    folder = root / dashboards.DASHBOARDS.relative_to(dashboards.ROOT)
    old, new = dashboards.rendered(before), dashboards.rendered(after)
    own = f"service-{name}.json"
    if own not in new or json.loads(new[own])["uid"] != f"shop-service-{name}":
        raise SystemExit(f"scripts/dashboards.py: renders no dashboard {own} for {name}")
    changed = {}
    for file_name, text in new.items():
        if old.get(file_name) != text:
            path = folder / file_name
            changed[path] = (path.read_text(encoding="utf-8") if path.exists() else None, text)
    return changed


def plan(root: Path, name: str) -> Plan:
    registry_path = root / "services" / "registry.toml"
    services = registry.load(registry_path)
    if not registry.NAME.match(name):
        raise SystemExit(f"{name!r}: a service name is 2 to 31 lower-case letters and digits")
    folder = root / "services" / name
    if name in services or folder.exists() or name in {"kit", "shopkit"}:
        raise SystemExit(f"{name}: already a service (or the kit)")
    values = {"name": name, "Title": name.capitalize()}
    files = {
        folder / Template(path).substitute(values): Template(text).substitute(values)
        for path, text in FILES.items()
    }
    ports = ", ".join(str(port) for port in _next_ports(list(services.values())))
    entry = f'\n[{name}]\nports = [{ports}]\nprefixes = ["{name}"]\n'
    old_registry = registry_path.read_text()
    new_registry = old_registry + entry
    # Fails here, not later in the stack, if it would not load.
    new_services = registry.parse(new_registry)
    pyproject_path = root / "pyproject.toml"
    old_pyproject = pyproject_path.read_text()
    compose_path = root / "compose" / "compose.yaml"
    old_compose = compose_path.read_text()
    nginx_path = root / gateway.COMPOSE_CONFIG.relative_to(gateway.ROOT)
    edits = {
        registry_path: (old_registry, new_registry),
        pyproject_path: (old_pyproject, _add_member(old_pyproject, name)),
        compose_path: (old_compose, _add_to_compose(old_compose, name, services)),
        nginx_path: (nginx_path.read_text(), gateway.render_compose(new_services)),
    }
    local_path = root / "compose" / "local.yaml"
    old_local = local_path.read_text()
    edits[local_path] = (old_local, _add_local_override(old_local, name, services))
    prometheus_path = root / "compose" / "prometheus.yml"
    old_prometheus = prometheus_path.read_text()
    edits[prometheus_path] = (old_prometheus, _add_scrape_job(old_prometheus, name, services))
    alerts_path = root / ALERTS
    old_alerts = alerts_path.read_text()
    edits[alerts_path] = (old_alerts, _add_absent_term(old_alerts, name))
    for path, (old, new) in _dashboards(root, name, list(services), list(new_services)).items():
        if old is None:
            files[path] = new
        else:
            edits[path] = (old, new)
    values_path = root / CHART_VALUES
    old_values = values_path.read_text()
    edits[values_path] = (old_values, _add_chart_entry(old_values, name))
    planned = {**files, **{path: new for path, (_, new) in edits.items()}}
    for path, text in chart.rendered(root, new_services, planned).items():
        if not path.exists():
            files[path] = text
        elif path.read_text() != text:
            edits[path] = (path.read_text(), text)
    return Plan(files, edits)


def _add_chart_entry(values: str, name: str) -> str:
    """The service's entry, last of the chart's `services` map (its settings, secrets and calls
    are left to add, as in compose)."""
    lines = values.splitlines(keepends=True)
    try:
        start = lines.index("services:\n")
    except ValueError:
        raise SystemExit(f"{CHART_VALUES}: no top-level `services:` to add {name} to") from None
    end = next(
        (
            index
            for index in range(start + 1, len(lines))
            if lines[index][:1] not in ("", " ", "\n")
        ),
        len(lines),
    )
    while end > start + 1 and (lines[end - 1] == "\n" or lines[end - 1].startswith("#")):
        end -= 1  # the next section's heading comment and the blank line before it
    entry = [f"  {name}:\n", f"    prefixes: [{name}]\n"]
    text = "".join(lines[:end] + entry + lines[end:])
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SystemExit(f"{CHART_VALUES}: adding {name} breaks it ({error!r})") from None
    before = yaml.safe_load(values)
    if parsed["services"].pop(name, None) != {"prefixes": [name]} or parsed != before:
        raise SystemExit(f"{CHART_VALUES}: could not add {name} to services alone")
    return text


def describe(plan: Plan, root: Path) -> str:
    lines = ["would create:"]
    for path, text in plan.files.items():
        lines.append(f"  {path.relative_to(root)} ({len(text.splitlines())} lines)")
    for path, (old, new) in plan.edits.items():
        name = str(path.relative_to(root))
        diff = difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), name, name
        )
        lines.append(f"would change {name}:")
        lines.append("".join(diff).rstrip("\n"))
    return "\n".join(lines)


def apply(plan: Plan) -> None:
    for path, text in plan.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for path, (_, new) in plan.edits.items():
        path.write_text(new, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", help="the service's one name: folder, package, route prefix")
    parser.add_argument("--dry-run", action="store_true", help="print what would be done")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    made = plan(root, args.name)
    if args.dry_run:
        print(describe(made, root))
        return
    apply(made)
    print(
        f"created services/{args.name} and its dashboard; registered it in services/registry.toml,"
        " pyproject.toml, compose/compose.yaml, compose/prometheus.yml and the ServiceAbsent alert;"
        " re-rendered compose/gateway/nginx.conf and the overview dashboard"
    )
    print("next: `uv sync` (installs its console script), then `./task test`")


if __name__ == "__main__":
    main()
