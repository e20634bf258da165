"""HTTP plumbing: JSON answers, API errors, the request size limit, body validation."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ..pgtext import find_bad_text
from ..store.db import without_nan


class ApiError(Exception):
    """An answer other than success: status, a stable machine code, words, and extra JSON fields."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict | None = None, **extra) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.extra = status, code, message, headers or {}, extra

    def response(self) -> Response:
        return json_response({"error": self.code, "message": self.message, **self.extra}, self.status, self.headers)


def _default(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def json_response(content, status: int = 200, headers: dict | None = None) -> Response:
    try:
        body = json.dumps(content, default=_default, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        body = json.dumps(without_nan(content), default=_default, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status, headers, media_type="application/json")


def invalid(loc: list, message: str, msg: str | None = None, type: str = "value_error") -> ApiError:
    """A 422 naming the field at `loc`, in the shape of the body validation's `detail`."""
    return ApiError(422, "validation_error", message, detail=[{"loc": loc, "msg": msg or message, "type": type}])


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "request_too_large", f"the request body is larger than {limit} bytes", limit=limit)


class BodyLimit:
    """ASGI middleware: refuse bodies above `max_bytes` (by Content-Length, or while reading a chunked body)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    return await BodyTooLarge(self.max_bytes).response()(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        return await self.app(scope, limited, send)


def validation_details(e: ValidationError) -> list[dict]:
    return [{"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in e.errors()]


async def parse_body(request: Request, body):
    """The body validated by `body` (a schemas.Body); 400 for bytes that are not JSON, 422 with field paths."""
    raw = await request.body()
    if not raw:
        raise invalid([], "the request needs a JSON body", "body required", "missing")
    try:
        parsed = body.validate_json(raw)
    except ValidationError as e:
        errors = e.errors()
        if errors and errors[0]["type"] == "json_invalid":
            raise ApiError(400, "invalid_json", f"the body is not JSON: {errors[0]['msg']}") from None
        raise ApiError(
            422, "validation_error", "the request does not match the schema", detail=validation_details(e)
        ) from None
    if b"\\u" in raw and not getattr(body, "cleans_text", False):
        _refuse_bad_text(raw)
    return parsed


def _refuse_bad_text(raw: bytes) -> None:
    """A 422 naming the first string of a JSON body that the database cannot store (only a \\u
    escape can bring a NUL into a JSON string; a lone surrogate is already refused as invalid JSON)."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):  # taken by the body's validator, so no text of it is stored as is
        return
    found = find_bad_text(doc)
    if found is not None:
        path, why = found
        raise invalid(list(path), f"the text at {'.'.join(map(str, path)) or 'the body'} {why}", why)
