"""OpenAPI 3.1 documents (public and internal) built from the route table and per-handler `Operation`s."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import marshmallow
from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from shopkit import headers
from shopkit.auth import PUBLIC, SIGNED_IN_OR_NOT
from shopkit.schemas import JSONSCHEMA

__all__ = [
    "ETAG",
    "IDEMPOTENCY_KEY",
    "IDEMPOTENCY_KEY_REQUIRED",
    "IF_MATCH",
    "IF_NONE_MATCH",
    "INTERNAL_PREFIX",
    "LOCATION",
    "RETRY_AFTER",
    "Header",
    "Operation",
    "document",
]

_KIT_ROUTES = {"/healthz", "/readyz", "/metrics"}
# Routes only services call; the gateway never routes them, so only the internal document lists them.
INTERNAL_PREFIX = "/internal/"
PROBLEM_JSON = "application/problem+json"
_REASONS = {
    400: "Malformed request (body not JSON, bad header)",
    401: "No valid access token",
    403: "The token lacks a role this operation needs",
    404: "No such resource",
    409: "Conflicts with the resource's current state",
    410: "The resource existed and is gone for good",
    412: "If-Match names a version that is no longer current",
    413: "Body larger than 1 MiB",
    415: "Body is not application/json",
    422: "Fields, parameters or headers that fail validation",
    428: "If-Match is missing",
    429: "Too many requests; retry after Retry-After seconds",
    503: "A dependency is unavailable; retry later",
}


@dataclass(frozen=True, slots=True)
class Header:
    """An HTTP header as the document declares it, in a request (parameter) or a response."""

    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False

    def parameter(self) -> dict[str, Any]:
        return {
            "in": "header",
            "name": self.name,
            "description": self.description,
            "required": self.required,
            "schema": dict(self.schema),
        }

    def response(self) -> dict[str, Any]:
        return {"description": self.description, "schema": dict(self.schema)}


# Any visible ASCII, as the kit's idempotency guard accepts (`shopkit.idempotency._VALID_KEY`).
_IDEMPOTENCY_KEY_SCHEMA = {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"}
IDEMPOTENCY_KEY = Header(
    headers.IDEMPOTENCY_KEY,
    "Repeats with the same key replay the first answer",
    _IDEMPOTENCY_KEY_SCHEMA,
)
IDEMPOTENCY_KEY_REQUIRED = Header(
    headers.IDEMPOTENCY_KEY,
    "Required: repeats with the same key replay the first answer",
    _IDEMPOTENCY_KEY_SCHEMA,
    required=True,
)
IF_MATCH = Header(
    headers.IF_MATCH,
    'The ETag read before writing, such as "v7": 428 without it, 412 once stale',
    {"type": "string", "pattern": '^(W/)?"v[0-9]{1,15}"$'},
    required=True,
)
IF_NONE_MATCH = Header(headers.IF_NONE_MATCH, "ETags the client holds: 304 when one is current")
ETAG = Header(headers.ETAG, "The version of the resource, for If-Match and If-None-Match")
LOCATION = Header(headers.LOCATION, "Where the created resource lives")
RETRY_AFTER = Header(headers.RETRY_AFTER, "Seconds to wait before retrying", {"type": "string"})


# A schema class, or an instance when the document needs `partial=True` or `exclude=...`.
SchemaLike = type[marshmallow.Schema] | marshmallow.Schema


@dataclass(frozen=True, slots=True)
class Operation:
    """What the document says about one handler beyond its route and access rule.

    `statuses` are the success answers (the first is the usual one); `response` is the JSON body of
    each success answer other than 204 and 304; `errors` are the 4xx the use case itself answers (the
    ones access, body, query and headers imply are added here).
    """

    body: SchemaLike | None = None
    body_required: bool = True
    query: SchemaLike | None = None
    response: SchemaLike | Mapping[str, Any] | None = None
    statuses: tuple[int, ...] = (200,)
    headers: tuple[Header, ...] = ()
    response_headers: tuple[Header, ...] = ()
    errors: tuple[int, ...] = ()
    # What the success answers are written in: a page for people (`text/html`) is not JSON.
    media_type: str = "application/json"


def _schema_name(schema: SchemaLike) -> str | None:
    """Classes become components named without `Schema`; instances (partial, exclude) are inlined."""
    if not isinstance(schema, type):
        return None
    return schema.__name__.removesuffix("Schema") or schema.__name__


def _ecma_pattern(
    converter: Any, field: marshmallow.fields.Field[Any], ret: dict[str, Any], **_: Any
) -> dict[str, Any]:
    """Validators end in Python's `\\Z` (a trailing newline would pass `$` in Python); JSON Schema
    patterns are ECMA-262, where `$` already means the very end and `\\Z` would be a literal Z."""
    pattern = ret.get("pattern")
    if isinstance(pattern, str) and pattern.endswith("\\Z"):
        return {"pattern": pattern[:-2] + "$"}
    return {}


def _raw_jsonschema(
    converter: Any, field: marshmallow.fields.Field[Any], **_: Any
) -> dict[str, Any]:
    """Keywords apispec drops (`propertyNames`...) or cannot derive, from `metadata={"jsonschema": ...}`."""
    return dict(field.metadata.get(JSONSCHEMA, {}))


def _problem(status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": _REASONS.get(status, "An RFC 9457 problem"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status in (429, 503):
        answer["headers"] = {RETRY_AFTER.name: RETRY_AFTER.response()}
    return answer


def _errors(operation: Operation, access: object, has_path_parameters: bool) -> set[int]:
    errors = set(operation.errors) | {503}
    if access != PUBLIC:
        errors.add(401)
        if isinstance(access, frozenset):
            errors.add(403)
    if operation.body is not None:
        errors |= {400, 413, 415, 422}
    if operation.query is not None or any(h.required for h in operation.headers):
        errors.add(422)
    if any(h.name == IDEMPOTENCY_KEY.name for h in operation.headers):
        # A malformed or missing key is 400; a key reused with another body is 422; in flight, 409.
        errors |= {400, 409, 422}
    for header in operation.headers:
        if header.name == IF_MATCH.name:
            errors |= {412, 428} if header.required else {412}
    if has_path_parameters:
        errors.add(404)
    return errors


def _responses(operation: Operation, errors: set[int]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in operation.statuses:
        answer: dict[str, Any] = {"description": "Success" if status < 300 else "Not modified"}
        if operation.response is not None and status not in (204, 304):
            answer["content"] = {operation.media_type: {"schema": operation.response}}
        if operation.response_headers:
            answer["headers"] = {h.name: h.response() for h in operation.response_headers}
        responses[str(status)] = answer
    for status in sorted(errors):
        responses[str(status)] = _problem(status)
    return responses


def document(
    app: web.Application,
    *,
    title: str,
    version: str,
    operations: Mapping[str, Operation],
    internal: bool = False,
) -> dict[str, Any]:
    """The public document (no `/internal/` route) or, with `internal`, the one of `/internal/` routes.

    `operations` maps a handler's name to its `Operation`; a handler without one is still listed.
    """
    # apispec also calls the resolver with instances and accepts None (inline), as its docs say.
    plugin = MarshmallowPlugin(schema_name_resolver=_schema_name)  # type: ignore[arg-type]
    spec = APISpec(
        title=title if not internal else f"{title} (internal)",
        version=version,
        openapi_version="3.1.0",
        plugins=[plugin],
    )
    plugin.converter.add_attribute_function(_ecma_pattern)  # type: ignore[union-attr]
    plugin.converter.add_attribute_function(_raw_jsonschema)  # type: ignore[union-attr]
    spec.components.security_scheme(
        "bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    spec.components.schema(
        "Problem",
        {
            "type": "object",
            "required": ["type", "title", "status"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "request_id": {"type": "string"},
                "errors": {"type": "object"},
            },
        },
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or path in _KIT_ROUTES or route.method == "HEAD":
            continue
        if path.startswith(INTERNAL_PREFIX) != internal:
            continue
        handler = route.handler
        name = getattr(handler, "__name__", "")
        access = getattr(handler, "__shop_access__", None)
        described = operations.get(name, Operation())
        path_parameters = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        operation: dict[str, Any] = {
            "operationId": name,
            "summary": (handler.__doc__ or name.replace("_", " ")).strip().splitlines()[0],
            "responses": _responses(described, _errors(described, access, bool(path_parameters))),
        }
        if access in (PUBLIC, SIGNED_IN_OR_NOT):
            # A token is optional: staff see more on some public reads; a guest has a cart too.
            operation["security"] = [{}, {"bearer": []}]
        else:
            operation["security"] = [{"bearer": []}]
            if isinstance(access, frozenset):
                operation["x-roles"] = sorted(access)
        if described.body is not None:
            operation["requestBody"] = {
                "required": described.body_required,
                "content": {"application/json": {"schema": described.body}},
            }
        parameters: list[dict[str, Any]] = [
            {"in": "path", "name": part, "required": True, "schema": {"type": "string"}}
            for part in path_parameters
        ]
        if described.query is not None:
            parameters.append({"in": "query", "schema": described.query})
        parameters += [header.parameter() for header in described.headers]
        if parameters:
            operation["parameters"] = parameters
        paths.setdefault(path, {})[route.method.lower()] = operation
    for path, operations_of_path in paths.items():
        spec.path(path=path, operations=operations_of_path)
    return spec.to_dict()
