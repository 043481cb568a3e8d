"""An OpenAPI 3.1 document built from the app's route table and the marshmallow schemas of its handlers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow
from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from shopkit.auth import PUBLIC

_KIT_ROUTES = {"/healthz", "/readyz", "/metrics"}
PROBLEM = {
    "description": "An RFC 9457 problem",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def document(
    app: web.Application,
    *,
    title: str,
    version: str,
    bodies: Mapping[str, type[marshmallow.Schema]] | None = None,
    queries: Mapping[str, type[marshmallow.Schema]] | None = None,
) -> dict[str, Any]:
    """`bodies` and `queries` map a handler's name to the schema of its JSON body or query string."""
    spec = APISpec(
        title=title, version=version, openapi_version="3.1.0", plugins=[MarshmallowPlugin()]
    )
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
        handler = route.handler
        name = getattr(handler, "__name__", "")
        access = getattr(handler, "__shop_access__", None)
        operation: dict[str, Any] = {
            "operationId": name,
            "summary": (handler.__doc__ or name.replace("_", " ")).strip().splitlines()[0],
            "responses": {"default": PROBLEM, "2XX": {"description": "Success"}},
        }
        if access != PUBLIC:
            operation["security"] = [{"bearer": []}]
            if isinstance(access, frozenset):
                operation["x-roles"] = sorted(access)
        if bodies and name in bodies:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": bodies[name]}},
            }
        parameters = [
            {"in": "path", "name": part[1:-1], "required": True, "schema": {"type": "string"}}
            for part in path.split("/")
            if part.startswith("{")
        ]
        if queries and name in queries:
            parameters.append({"in": "query", "schema": queries[name]})
        if parameters:
            operation["parameters"] = parameters
        paths.setdefault(path, {})[route.method.lower()] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
