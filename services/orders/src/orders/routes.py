"""HTTP handlers of the orders service."""

from __future__ import annotations

from aiohttp import web

from shopkit.openapi import Operation

routes = web.RouteTableDef()
# What the OpenAPI document says of each handler: body, success status, headers.
OPERATIONS: dict[str, Operation] = {}
