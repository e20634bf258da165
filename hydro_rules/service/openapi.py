"""The OpenAPI 3.1 description, built from the route table and the request models."""

from __future__ import annotations

import re
from functools import cache

from .. import __version__

_STATUS_TEXT = {
    200: "OK",
    202: "Accepted: recorded and published",
    400: "The body is not JSON",
    401: "No valid bearer token (see WWW-Authenticate)",
    403: "The token lacks the scope",
    404: "Not found",
    409: "Refused: a guard, or the node is not ready for commands",
    413: "The request is too large",
    422: "Validation error; `detail[].loc` is the field path",
    429: "Busy",
    503: "Database, broker or engine unavailable; retry later",
}


def build_spec(specs) -> dict:
    return _build(tuple(specs))


@cache
def _build(specs: tuple) -> dict:
    paths: dict = {}
    schemas: dict = {}
    for s in specs:
        op: dict = {"summary": s.summary, "operationId": f"{s.method.lower()}_{s.fn.__name__}_{len(paths)}"}
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", s.path)
        ]
        params += [
            {"name": name, "in": "query", "required": False, "schema": {"type": typ}, "description": desc}
            for name, typ, desc in s.query
        ]
        if params:
            op["parameters"] = params
        if s.body is not None:
            schema = s.body.json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                schemas[name] = sub
            schemas[s.body.name] = schema
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{s.body.name}"}}},
            }
        if s.scope is not None:
            op["security"] = [{"bearer": [s.scope]}]
            op["description"] = f"Needs a token with scope `{s.scope}`."
        codes = s.responses or (200,)
        if s.scope is not None:
            codes = tuple(sorted(set(codes) | {401, 403}))
        op["responses"] = {
            str(c): {
                "description": _STATUS_TEXT.get(c, ""),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                if c >= 400
                else {"application/json": {}},
            }
            for c in codes
        }
        paths.setdefault(s.path, {})[s.method.lower()] = op
    schemas["Error"] = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "stable machine code"},
            "message": {"type": "string"},
            "detail": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                        "msg": {"type": "string"},
                        "type": {"type": "string"},
                    },
                },
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hydro-rules ingest service",
            "version": __version__,
            "description": "Telemetry in, commands out, alerts and history to read. Only this service writes.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
