"""Request parsing: JSON bodies and query strings through marshmallow schemas that reject unknown fields."""

from __future__ import annotations

import functools
import json
from typing import Any

import marshmallow
from aiohttp import web

from shopkit.problems import MalformedJson, UnsupportedMediaType, ValidationFailed

__all__ = [
    "JSONSCHEMA",
    "Boolean",
    "Schema",
    "WholeNumber",
    "load_body",
    "load_query",
    "read_json",
    "validate",
]

# Field metadata key: JSON Schema keywords the OpenAPI document states for a field as they are.
JSONSCHEMA = "jsonschema"


class Boolean(marshmallow.fields.Boolean):
    """JSON true or false only: not "true", 1 or "yes" (the document says boolean)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class WholeNumber(marshmallow.fields.Integer):
    """A JSON number without a fraction; JSON Schema counts 2.0 as an integer, so it is one here.

    Never a string or a boolean."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid", input=value)
        return int(super()._deserialize(value, attr, data, **kwargs))


class Schema(marshmallow.Schema):
    """Unknown fields are an error, so a client can never slip in `roles`, ids or stock."""

    class Meta:
        unknown = marshmallow.RAISE


def validate(schema: marshmallow.Schema, data: Any, *, partial: bool = False) -> Any:
    try:
        return schema.load(data, partial=partial)
    except marshmallow.ValidationError as error:
        raise ValidationFailed(
            "the request has invalid fields", errors=_field_errors(error.messages)
        ) from None


def _field_errors(messages: Any) -> Any:
    if isinstance(messages, list):
        return {"_body": messages}
    return messages


async def read_json(request: web.Request) -> Any:
    content_type = request.content_type
    json_like = content_type in (
        "application/json",
        "application/octet-stream",
    ) or content_type.endswith("+json")
    if request.body_exists and not json_like:
        raise UnsupportedMediaType("send the body as application/json")
    raw = await request.read()
    try:
        data = json.loads(raw, parse_constant=_no_constants) if raw else {}
        # Lone surrogates ("\ud800") parse but cannot be stored or hashed: refuse them here.
        json.dumps(data, ensure_ascii=False).encode()
    except (ValueError, UnicodeError, RecursionError):
        raise MalformedJson("the body is not valid JSON (UTF-8, no NaN or Infinity)") from None
    return data


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def load_body(
    request: web.Request,
    schema: marshmallow.Schema | type[marshmallow.Schema],
    *,
    partial: bool = False,
) -> Any:
    """The validated body: 400 when it is not JSON, 422 with per-field errors when it is invalid.

    The body is required: an empty one is refused, as the OpenAPI document says (`{}` is a body).
    A schema class is made once and reused (making one copies every field: a hot route's cost)."""
    if not await request.read():
        raise ValidationFailed("send a JSON body", errors={"_body": ["a JSON body is required"]})
    if isinstance(schema, type):
        schema = _instance(schema)
    return validate(schema, await read_json(request), partial=partial)


@functools.cache
def _instance(schema: type[marshmallow.Schema]) -> marshmallow.Schema:
    # Loading keeps no state on the schema, so one instance serves every request.
    return schema()


def load_query(request: web.Request, schema: marshmallow.Schema) -> Any:
    return validate(schema, dict(request.query))
