"""An Elastic APM server's intake, for tests: it takes events as APM Server does (`POST
/intake/v2/events`, gzip ndjson, metadata first), checks each line against the fields the intake v2
specification requires, and records what it accepted (no APM server can run here)."""

from __future__ import annotations

import re
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

__all__ = ["ApmIntake", "problems_of"]

EVENTS_PATH = "/intake/v2/events"
# A version past 8.0, so the agent behaves as it does against a current server.
SERVER_VERSION = "8.15.0"
MAX_KEYWORD = 1024
_SERVICE_NAME = re.compile(r"^[a-zA-Z0-9 _-]+$")
_OUTCOMES = {"success", "failure", "unknown"}
_KINDS = ("transaction", "span", "error", "metricset")


def _keyword(document: dict[str, Any], field: str, *, required: bool = False) -> list[str]:
    value = document.get(field)
    if value is None:
        return [f"'{field}' required"] if required else []
    if not isinstance(value, str) or len(value) > MAX_KEYWORD:
        return [f"'{field}' must be a string of at most {MAX_KEYWORD} characters"]
    return []


def _duration(document: dict[str, Any]) -> list[str]:
    value = document.get("duration")
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return ["'duration' required, a number of milliseconds >= 0"]
    return []


def _object(document: dict[str, Any], field: str) -> dict[str, Any] | None:
    value = document.get(field)
    return value if isinstance(value, dict) else None


def _metadata(document: dict[str, Any]) -> list[str]:
    service = _object(document, "service")
    if service is None:
        return ["'service' required"]
    found = _keyword(service, "name", required=True)
    if not found and not _SERVICE_NAME.match(service["name"]):
        found.append("'service.name' may hold only letters, digits, spaces, _ and -")
    agent = _object(service, "agent")
    if agent is None:
        found.append("'service.agent' required")
    else:
        found += _keyword(agent, "name", required=True) + _keyword(agent, "version", required=True)
    if (language := _object(service, "language")) is not None:
        found += _keyword(language, "name", required=True)
    if (runtime := _object(service, "runtime")) is not None:
        found += _keyword(runtime, "name", required=True) + _keyword(
            runtime, "version", required=True
        )
    if (process := _object(document, "process")) is not None and not isinstance(
        process.get("pid"), int
    ):
        found.append("'process.pid' required")
    return found


def _transaction(document: dict[str, Any]) -> list[str]:
    found = [
        *_keyword(document, "id", required=True),
        *_keyword(document, "trace_id", required=True),
    ]
    found += _keyword(document, "type", required=True) + _keyword(document, "name")
    found += _keyword(document, "parent_id") + _keyword(document, "result") + _duration(document)
    span_count = _object(document, "span_count")
    if span_count is None or not isinstance(span_count.get("started"), int):
        found.append("'span_count.started' required")
    if document.get("outcome") is not None and document["outcome"] not in _OUTCOMES:
        found.append(f"'outcome' must be one of {sorted(_OUTCOMES)}")
    request = _object(_object(document, "context") or {}, "request")
    if request is not None:
        found += _keyword(request, "method", required=True)
    return found


def _span(document: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for field in ("id", "trace_id", "parent_id", "name", "type"):
        found += _keyword(document, field, required=True)
    found += _duration(document)
    if document.get("start") is None and document.get("timestamp") is None:
        found.append("'start' or 'timestamp' required")
    return found


def _error(document: dict[str, Any]) -> list[str]:
    found = _keyword(document, "id", required=True)
    correlated = [
        field for field in ("trace_id", "transaction_id", "parent_id") if document.get(field)
    ]
    if correlated and not {"trace_id", "parent_id"} <= set(correlated):
        found.append("'trace_id' and 'parent_id' go together with 'transaction_id'")
    exception, logged = _object(document, "exception"), _object(document, "log")
    if exception is None and logged is None:
        found.append("'exception' or 'log' required")
    if exception is not None and exception.get("message") is None and exception.get("type") is None:
        found.append("'exception.message' or 'exception.type' required")
    if logged is not None and logged.get("message") is None:
        found.append("'log.message' required")
    return found


def _metricset(document: dict[str, Any]) -> list[str]:
    samples = _object(document, "samples")
    if samples is None:
        return ["'samples' required"]
    return [
        f"sample '{name}' needs 'value' or 'values'"
        for name, sample in samples.items()
        if not isinstance(sample, dict)
        or (sample.get("value") is None and sample.get("values") is None)
    ]


_CHECKS = {
    "metadata": _metadata,
    "transaction": _transaction,
    "span": _span,
    "error": _error,
    "metricset": _metricset,
}


def problems_of(lines: list[bytes]) -> list[str]:
    """What APM Server would refuse in one intake request's ndjson lines: the first must be a
    metadata object, each next one a transaction, span, error or metricset with its required
    fields. Empty when the request would be accepted."""
    found: list[str] = []
    for number, line in enumerate(lines, start=1):
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError:
            found.append(f"line {number}: not JSON")
            continue
        if not isinstance(document, dict) or len(document) != 1:
            found.append(f"line {number}: one object with one key expected")
            continue
        ((kind, body),) = document.items()
        wanted = ("metadata",) if number == 1 else _KINDS
        if kind not in wanted or not isinstance(body, dict):
            found.append(f"line {number}: expected {' or '.join(wanted)}, got {kind!r}")
            continue
        found += [f"line {number} ({kind}): {problem}" for problem in _CHECKS[kind](body)]
    return found


class ApmIntake:
    """An APM server's intake on a loopback port: `async with ApmIntake() as intake:`, point the
    agent at `intake.url`, then read `intake.events("transaction")` and `intake.rejected`."""

    def __init__(self, secret_token: str | None = None) -> None:
        self._secret_token = secret_token
        self._server: TestServer | None = None
        self.metadata: list[dict[str, Any]] = []
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.rejected: list[str] = []

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the intake is not started")
        return str(self._server.make_url("")).rstrip("/")

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [body for received, body in self.received if received == kind]

    def _authorized(self, request: web.Request) -> bool:
        if self._secret_token is None:
            return True
        return request.headers.get("Authorization") == f"Bearer {self._secret_token}"

    async def _server_information(self, request: web.Request) -> web.Response:
        # What APM Server answers on its root (the agent reads `version`).
        return web.json_response(
            {
                "build_date": "2024-01-01T00:00:00Z",
                "build_sha": "0" * 40,
                "publish_ready": True,
                "version": SERVER_VERSION,
            }
        )

    async def _intake(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            self.rejected.append("unauthorized")
            return web.json_response({"error": "authentication failed"}, status=401)
        if request.content_type != "application/x-ndjson":
            self.rejected.append(f"content type {request.content_type}")
            return web.json_response({"error": "invalid content type"}, status=400)
        # aiohttp undoes a gzip or deflate Content-Encoding (the agent gzips), as APM Server does.
        body = await request.read()
        lines = [line for line in body.split(b"\n") if line.strip()]
        problems = problems_of(lines)
        if problems:
            self.rejected += problems
            errors = [{"message": problem} for problem in problems]
            return web.json_response({"accepted": 0, "errors": errors}, status=400)
        for number, line in enumerate(lines):
            ((kind, document),) = orjson.loads(line).items()
            if number == 0:
                self.metadata.append(document)
            else:
                self.received.append((kind, document))
        return web.Response(status=202)

    async def __aenter__(self) -> ApmIntake:
        app = web.Application()
        app.router.add_get("/", self._server_information)
        app.router.add_post(EVENTS_PATH, self._intake)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None
