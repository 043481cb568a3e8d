"""The OpenAPI document: what it states of bodies, answers, headers, access, and internal routes."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from marshmallow import fields, validate

from shopkit import openapi
from shopkit.auth import public, requires
from shopkit.openapi import IF_MATCH, Operation
from shopkit.schemas import Schema


class NoteSchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z]{2}\Z"))


class NoteOut(Schema):
    id = fields.String(required=True)


def _app() -> web.Application:
    @public
    async def read_note(request: web.Request) -> web.Response:
        return web.json_response({"id": "1"})

    @requires("staff")
    async def edit_note(request: web.Request) -> web.Response:
        return web.json_response({"id": "1"})

    @requires("service")
    async def sync_notes(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/api/v1/notes/{note_id}", read_note)
    app.router.add_patch("/api/v1/notes/{note_id}", edit_note)
    app.router.add_post("/internal/notes/sync", sync_notes)
    return app


OPERATIONS = {
    "read_note": Operation(response=NoteOut),
    "edit_note": Operation(body=NoteSchema, response=NoteOut, headers=(IF_MATCH,)),
    "sync_notes": Operation(statuses=(204,)),
}


def _document(internal: bool = False) -> dict[str, Any]:
    return openapi.document(
        _app(), title="notes", version="1", operations=OPERATIONS, internal=internal
    )


def test_a_body_states_its_constraints_as_ecma_patterns_and_refuses_unknown_fields() -> None:
    schema = _document()["components"]["schemas"]["Note"]

    assert schema["additionalProperties"] is False
    assert schema["required"] == ["code"]
    # `\Z` is Python's end of string; JSON Schema is ECMA-262, where `$` is the end.
    assert schema["properties"]["code"]["pattern"] == "^[a-z]{2}$"


def test_each_operation_declares_its_answers_headers_and_access() -> None:
    paths = _document()["paths"]
    read, edit = paths["/api/v1/notes/{note_id}"]["get"], paths["/api/v1/notes/{note_id}"]["patch"]

    assert read["security"] == [{}, {"bearer": []}]
    assert set(read["responses"]) == {"200", "404", "503"}
    assert read["responses"]["200"]["content"]["application/json"]["schema"]
    assert edit["security"] == [{"bearer": []}]
    assert {"401", "403", "412", "422", "428"} <= set(edit["responses"])
    headers = [p for p in edit["parameters"] if p["in"] == "header"]
    assert headers == [IF_MATCH.parameter()]


def test_internal_routes_are_only_in_the_internal_document() -> None:
    public_paths, internal_paths = _document()["paths"], _document(internal=True)["paths"]

    assert "/internal/notes/sync" not in public_paths
    assert list(internal_paths) == ["/internal/notes/sync"]
    assert internal_paths["/internal/notes/sync"]["post"]["x-roles"] == ["service"]
