"""Render the nginx gateway's config from nginx/shop.conf.template and start nginx with it."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import registry

from shopkit import problems
from shopkit.testing.peers import Peer, PeerFailed

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "nginx" / "shop.conf.template"
# The second server of the same nginx: the listener services call each other through locally.
INTERNAL_TEMPLATE = ROOT / "nginx" / "internal.conf.template"
# The API reference page (/api/docs) and the Swagger UI it loads (installed by scripts/install.sh).
DOCS_DIR = ROOT / "nginx" / "docs"
SWAGGER_UI_DIR = ROOT / ".tools" / "web" / "node_modules" / "swagger-ui-dist"
# The gateway of the compose platform (compose/compose.yaml mounts it): rendered from the same
# template, with every service by its compose name, and kept in the repository so that compose
# needs no Python. A test fails when it differs from what `--compose` renders.
COMPOSE_CONFIG = ROOT / "compose" / "gateway" / "nginx.conf"
# Where compose/compose.yaml mounts the /api/docs files, and the gateway's state folder (pid,
# temporary files: a tmpfs there, the container's root filesystem being read-only).
COMPOSE_DOCS_DIR = Path("/srv/docs")
COMPOSE_SWAGGER_UI_DIR = Path("/srv/swagger-ui")
COMPOSE_STATE_DIR = Path("/run/gateway")
# Every instance of a service listens on this port in compose (the image's PORT).
COMPOSE_SERVICE_PORT = 8000
# nginx's connection counters (stub_status) for the Prometheus exporter, on a port compose never
# publishes.
COMPOSE_STATUS_PORT = 8081
# The Helm chart's gateway (charts/shop, gateway.enabled): the compose one, with each service's
# pods found through its headless Service `<name>-pods`. The chart can read only its own files.
KUBERNETES_CONFIG = ROOT / "charts" / "shop" / "files" / "gateway" / "nginx.conf"


@dataclass(frozen=True, slots=True)
class Route:
    """One nginx location proxied to one upstream, optionally under a limit_req zone."""

    location: str
    upstream: str
    limit: str | None = None


def routes_for(services: Mapping[str, registry.Service]) -> tuple[Route, ...]:
    """Each service's locations from the registry: its rate-limited paths, then its prefixes."""
    routes: list[Route] = []
    for service in services.values():
        routes += [Route(f"= {path}", service.name, zone) for path, zone in service.limited.items()]
        for prefix in service.prefixes:
            routes.append(Route(f"= /api/v1/{prefix}", service.name))
            routes.append(Route(f"/api/v1/{prefix}/", service.name))
    return tuple(routes)


def internal_routes_for(services: Mapping[str, registry.Service]) -> tuple[Route, ...]:
    """The internal listener's locations: per service, `/internal/<prefix>` and everything under
    it, and its public `/api/v1/<prefix>` routes, none rate-limited (the callers are services)."""
    routes: list[Route] = []
    for service in services.values():
        for prefix in service.prefixes:
            routes.append(Route(f"= /internal/{prefix}", service.name))
            routes.append(Route(f"/internal/{prefix}/", service.name))
            routes.append(Route(f"= /api/v1/{prefix}", service.name))
            routes.append(Route(f"/api/v1/{prefix}/", service.name))
    return tuple(routes)


# Situations only the gateway meets (the services never parse such requests), so not in the kit.
class RequestTimeout(problems.Problem):
    status, slug, title = 408, "request-timeout", "Request timeout"


class LengthRequired(problems.Problem):
    status, slug, title = 411, "length-required", "Length required"


class UriTooLong(problems.Problem):
    status, slug, title = 414, "uri-too-long", "URI too long"


class HeaderFieldsTooLarge(problems.Problem):
    status, slug, title = 431, "header-fields-too-large", "Request header fields too large"


class NotImplemented_(problems.Problem):
    status, slug, title = 501, "not-implemented", "Not implemented"


class HttpVersionNotSupported(problems.Problem):
    status, slug, title = 505, "http-version-not-supported", "HTTP version not supported"


# Errors nginx itself produces: malformed requests (a bad escape, a control character, `..` above
# the root, an invalid method, an over-long URI or header, an unknown HTTP version or transfer
# coding), no route, body too large, rate limited, upstream down or slow, and what serving the
# /api/docs files can meet (an unreadable file, a failed If-Match).
GATEWAY_PROBLEMS: dict[int, tuple[type[problems.Problem], str]] = {
    400: (problems.BadRequest, "The request could not be parsed."),
    404: (problems.NotFound, "No resource is served at this path."),
    403: (problems.Forbidden, "The gateway may not serve this file."),
    405: (problems.MethodNotAllowed, "The gateway does not accept this method here."),
    408: (RequestTimeout, "The request was not received in time."),
    411: (LengthRequired, "A request body needs a Content-Length."),
    412: (problems.PreconditionFailed, "The file does not match the preconditions of the request."),
    413: (problems.PayloadTooLarge, "The request body is larger than 1 MiB."),
    414: (UriTooLong, "The request URI is longer than 8 KiB."),
    429: (problems.TooManyRequests, "Too many requests from this address; retry shortly."),
    431: (HeaderFieldsTooLarge, "A request header is longer than 8 KiB, or all are over 32 KiB."),
    500: (problems.Problem, "The gateway failed to handle the request."),
    501: (NotImplemented_, "The request uses a transfer coding the gateway does not implement."),
    502: (problems.BadGateway, "The upstream service could not be reached."),
    503: (problems.ServiceUnavailable, "The upstream service is unavailable."),
    504: (problems.GatewayTimeout, "The upstream service did not answer in time."),
    505: (HttpVersionNotSupported, "The gateway speaks HTTP/1.0 and HTTP/1.1."),
}
# nginx's own codes for errors it reports to clients under another status.
NGINX_CODES = {431: (494,)}
# Error pages are internal locations under this prefix: a URI, not a named location, since a
# request refused while its request line was parsed has no URI and nginx refuses a named
# location for it (answering its own HTML 500).
PROBLEM_PREFIX = "/_gateway/problem/"


def _upstreams_block(
    upstreams: Mapping[str, Sequence[str]], affinities: Mapping[str, str | None]
) -> str:
    blocks = []
    for name, servers in upstreams.items():
        if not servers:
            raise ValueError(f"upstream {name} has no servers")
        lines = [f"    upstream {name} {{"]
        if affinities.get(name):
            # Consistent: adding or losing an instance moves only that instance's share.
            lines.append(f"        hash {affinities[name]} consistent;")
        lines += [f"        server {server} max_fails=1 fail_timeout=5s;" for server in servers]
        # Idle connections close before aiohttp's 75 s keepalive does, so nginx never reuses a
        # connection the service is closing.
        lines += ["        keepalive 64;", "        keepalive_timeout 60s;", "    }", ""]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def _routes_block(routes: Sequence[Route], upstreams: Mapping[str, Sequence[str]]) -> str:
    blocks = []
    for route in routes:
        if route.upstream not in upstreams:
            continue
        lines = [f"        location {route.location} {{"]
        if route.limit:
            lines.append(f"            limit_req zone={route.limit} burst=20 nodelay;")
        lines += [f"            proxy_pass http://{route.upstream};", "        }", ""]
        blocks.append("\n".join(lines))
    # Each service's own probes, reachable through the gateway for monitoring and benchmarks.
    for name in upstreams:
        for probe in ("healthz", "readyz"):
            blocks.append(
                f"        location = /api/v1/{name}/{probe} {{\n"
                f"            access_log off;\n"
                f"            proxy_pass http://{name}/{probe};\n"
                f"        }}\n"
            )
    return "\n".join(blocks)


def _problem_body(status: int, problem: type[problems.Problem], detail: str) -> str:
    body = {
        "type": problems.TYPE_BASE + problem.slug,
        "title": problem.title,
        "status": status,
        "detail": detail,
        "instance": "@instance@",
        "request_id": "@request_id@",
    }
    text = json.dumps(body, separators=(",", ":"))
    # It becomes an nginx string in single quotes.
    if "'" in text or "$" in text:
        raise ValueError(f"problem {status} must not contain a quote or a dollar: {text}")
    # nginx fills these in; both maps only let through values that need no JSON escaping.
    return text.replace("@instance@", "$shop_instance").replace("@request_id@", "$shop_request_id")


def _problems_block() -> str:
    lines = []
    for status in GATEWAY_PROBLEMS:
        codes = " ".join(str(code) for code in (status, *NGINX_CODES.get(status, ())))
        # `=status`: without it nginx keeps the status it chose (400 for its 494) over the page's.
        lines.append(f"        error_page {codes} ={status} {PROBLEM_PREFIX}{status};")
    for status, (problem, detail) in GATEWAY_PROBLEMS.items():
        lines += [
            "",
            f"        location = {PROBLEM_PREFIX}{status} {{",
            "            internal;",
            "            default_type application/problem+json;",
            f"            return {status} '{_problem_body(status, problem, detail)}';",
            "        }",
        ]
    return "\n".join(lines)


def _trailing_slash_guards(routes: Sequence[Route]) -> str:
    """An exact 404 for each `/prefix/` route without its own `= /prefix`.

    nginx otherwise answers `/prefix` with a 301 to `/prefix/`: a redirect nobody asked for, and
    an HTML body.
    """
    exact = {
        route.location.removeprefix("= ") for route in routes if route.location.startswith("= ")
    }
    blocks = []
    for route in routes:
        bare = route.location.rstrip("/")
        if route.location.startswith("/") and route.location.endswith("/") and bare not in exact:
            exact.add(bare)
            blocks.append(f"        location = {bare} {{\n            return 404;\n        }}\n")
    return "\n".join(blocks)


def _docs_config(upstreams: Mapping[str, Sequence[str]]) -> str:
    """Swagger UI's config: a dropdown of every routed service's OpenAPI document."""
    urls = [{"name": name, "url": f"/api/v1/{name}/openapi.json"} for name in upstreams]
    config = {"urls": urls, "urls.primaryName": next(iter(upstreams), ""), "validatorUrl": None}
    text = json.dumps(config, separators=(",", ":"))
    # It is an nginx string in single quotes, where `$` would start a variable.
    if "'" in text or "$" in text or "\\" in text:
        raise ValueError(f"service names must be plain words: {list(upstreams)}")
    return text


def _internal_server(
    port: int | None, routes: Sequence[Route], upstreams: Mapping[str, Sequence[str]]
) -> str:
    """The internal listener's server block (none without a port)."""
    if port is None:
        return ""
    values = {
        "internal_port": str(port),
        "internal_routes": _routes_block(routes, upstreams) + _trailing_slash_guards(routes),
        "problems": _problems_block(),
    }
    return _fill(INTERNAL_TEMPLATE.read_text(), values)


def _fill(template: str, values: Mapping[str, str]) -> str:
    # {{name}} placeholders: nginx's own $var and ${var} syntax rules out string.Template.
    return re.sub(r"\{\{(\w+)\}\}", lambda match: values[match.group(1)], template)


def render(
    listen_port: int,
    upstreams: Mapping[str, Sequence[str]],
    state_dir: Path,
    routes: Sequence[Route] | None = None,
    internal_port: int | None = None,
) -> str:
    """The config for a gateway on 127.0.0.1:`listen_port`; routes to unknown upstreams skipped.
    `routes` default to the registry's (services/registry.toml). With `internal_port`, a second
    listener on 127.0.0.1:`internal_port` serves the services themselves: each service's
    `/internal/` and public routes, unlimited (nginx/internal.conf.template)."""
    services = registry.load()
    if routes is None:
        routes = routes_for(services)
    state = state_dir.resolve()
    values = {
        "listen": f"127.0.0.1:{listen_port}",
        "state_dir": str(state),
        "error_log": str(state / "error.log"),
        "access_log": str(state / "access.log"),
        "docs_dir": str(DOCS_DIR),
        "swagger_ui_dir": str(SWAGGER_UI_DIR),
        "internal_server": _internal_server(
            internal_port, internal_routes_for(services), upstreams
        ),
        "status_server": "",
    }
    return _fill_gateway(values, services, upstreams, routes)


def render_compose(services: Mapping[str, registry.Service] | None = None) -> str:
    """The compose platform's gateway: on port 8080 of its container, every service's instances
    as its compose name on port 8000, logs on standard output and error (Docker's log files,
    which Filebeat reads), and stub_status on 8081 for the exporter. No internal listener: in
    compose, services call each other by name (PRODUCTS_URL=http://products:8000).

    nginx resolves each name to all its addresses (one per `--scale`d instance) when it starts
    or reloads; compose/gateway/run.sh reloads it when those addresses change."""
    return _in_a_container(services, host_suffix="")


def render_kubernetes(services: Mapping[str, registry.Service] | None = None) -> str:
    """The Helm chart's gateway: the compose gateway, but every service's pods by the name of its
    headless Service (`orders-pods`), which resolves to each ready pod; the same run.sh reloads
    nginx when they change (a rollout, a scale)."""
    return _in_a_container(services, host_suffix="-pods")


def _in_a_container(services: Mapping[str, registry.Service] | None, host_suffix: str) -> str:
    """The gateway in its own container, each service's instances at `<name><host_suffix>:8000`."""
    services = services if services is not None else registry.load()
    upstreams = {name: [f"{name}{host_suffix}:{COMPOSE_SERVICE_PORT}"] for name in services}
    values = {
        "listen": "8080",
        "state_dir": str(COMPOSE_STATE_DIR),
        "error_log": "stderr",
        "access_log": "/dev/stdout",
        "docs_dir": str(COMPOSE_DOCS_DIR),
        "swagger_ui_dir": str(COMPOSE_SWAGGER_UI_DIR),
        "internal_server": "",
        "status_server": _status_server(COMPOSE_STATUS_PORT),
    }
    return _fill_gateway(values, services, upstreams, routes_for(services))


def _status_server(port: int) -> str:
    return (
        "    # nginx's connection counters, which prometheus-nginx-exporter turns into metrics\n"
        "    # (Prometheus cannot read this page itself), on a port compose never publishes.\n"
        "    server {\n"
        f"        listen {port};\n"
        "        access_log off;\n"
        "        location = /nginx_status {\n"
        "            stub_status;\n"
        "        }\n"
        "        location / {\n"
        "            return 404;\n"
        "        }\n"
        "    }\n"
    )


def _fill_gateway(
    values: Mapping[str, str],
    services: Mapping[str, registry.Service],
    upstreams: Mapping[str, Sequence[str]],
    routes: Sequence[Route],
) -> str:
    affinities = {name: service.affinity for name, service in services.items()}
    shared = {
        "upstreams": _upstreams_block(upstreams, affinities),
        "routes": _routes_block(routes, upstreams) + _trailing_slash_guards(routes),
        "problems": _problems_block(),
        "docs_config": _docs_config(upstreams),
    }
    return _fill(TEMPLATE.read_text(), {**values, **shared})


def nginx_binary() -> str:
    # Debian puts nginx in /usr/sbin, which a non-login PATH may lack.
    found = shutil.which("nginx", path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin")
    if found is None:
        raise PeerFailed("nginx is not installed: run ./task install")
    return found


def peer(
    state_dir: Path,
    listen_port: int,
    upstreams: Mapping[str, Sequence[str]],
    log_path: Path | None = None,
    routes: Sequence[Route] | None = None,
    internal_port: int | None = None,
) -> Peer:
    """Write the config into `state_dir` and describe the nginx process that serves it (with the
    internal listener on `internal_port`, if given)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "tmp").mkdir(exist_ok=True)
    prefix = state_dir.resolve()
    conf = prefix / "nginx.conf"
    conf.write_text(render(listen_port, upstreams, prefix, routes, internal_port))
    return Peer(
        name="nginx",
        # -e: nginx opens its compiled-in error log before reading the config; keep that local too.
        argv=[nginx_binary(), "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
        log_path=log_path or state_dir / "nginx.log",
        port=listen_port,
        ready_url=f"http://127.0.0.1:{listen_port}/healthz",
    )


def _parse_upstream(text: str) -> tuple[str, list[str]]:
    name, _, servers = text.partition("=")
    if not name or not servers:
        raise argparse.ArgumentTypeError("expected NAME=HOST:PORT[,HOST:PORT...]")
    return name, [server.strip() for server in servers.split(",") if server.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080, help="port the gateway listens on")
    parser.add_argument(
        "--internal-port",
        type=int,
        default=None,
        help="port of the internal listener services call each other through (none if omitted)",
    )
    parser.add_argument(
        "--upstream",
        type=_parse_upstream,
        action="append",
        default=[],
        metavar="NAME=HOST:PORT,...",
        help="servers of one upstream; repeat per service",
    )
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".run" / "nginx")
    parser.add_argument(
        "--compose",
        action="store_true",
        help=f"render the compose platform's gateway instead (into {COMPOSE_CONFIG.relative_to(ROOT)} with --output)",
    )
    parser.add_argument(
        "--kubernetes",
        action="store_true",
        help=f"render the Helm chart's gateway instead (into {KUBERNETES_CONFIG.relative_to(ROOT)} with --output)",
    )
    parser.add_argument("--output", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    if args.compose:
        _write(render_compose(), args.output)
        return
    if args.kubernetes:
        _write(render_kubernetes(), args.output)
        return
    upstreams = dict(args.upstream) or {
        service.name: [f"127.0.0.1:{port}" for port in service.ports]
        for service in registry.load().values()
    }
    _write(
        render(args.port, upstreams, args.state_dir, internal_port=args.internal_port), args.output
    )


def _write(config: str, output: Path | None) -> None:
    if output:
        output.write_text(config)
    else:
        sys.stdout.write(config)


if __name__ == "__main__":
    main()
