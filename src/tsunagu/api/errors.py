"""The one error shape as the admin API answers it, where every error becomes it, and how
OpenAPI shows it. Ingest (api/responses.py) and the admin UI's JSON endpoints
(admin/json_endpoints.py) answer the same body, `TsunaguError.to_dict()`:

    {"error": {"status": 400, "code": "invalid_input", "message": "limit: ...",
               "errors": [{"field": "limit", "reason": "...", "index": 3}]},
     "code": "invalid_input", "message": "limit: ..."}

`errors` (each bad field, its reason and, for an item of a list, its index) is there when
there are fields to name; the top-level `code` and `message` repeat the error's, for the
Segment-spec SDKs that read them there. Every error of the admin API has this shape,
including those Starlette and FastAPI raise themselves:

| status | code | when |
| --- | --- | --- |
| 400 | invalid_input | a parameter or a field of the body is wrong (query and body validation too) |
| 401 | unauthorized | the API token is missing or unknown |
| 404 | not_found | no such person, definition or endpoint |
| 405 | method_not_allowed | the path exists, not with this method (`Allow` lists those it has) |
| 409 | conflict | the change contradicts the workspace (deleting what a segment reads) |
| 413 | payload_too_large | the body is over `MAX_BODY_BYTES` |
| other 4xx | from the status's name | `unsupported_media_type`, `too_many_requests`, … (`http_error`) |
| 500 | internal_error | a defect: answered, logged once with its traceback, connection closed |
| 503 | unavailable | the workspace is opening or recovering from a storage error: retry |

`document_errors` writes the same into the OpenAPI description, on every operation.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    TsunaguError,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "MAX_BODY_BYTES",
    "STATUSES",
    "Error",
    "LimitBody",
    "ServerErrors",
    "document_errors",
    "error_response",
    "error_responses",
    "http_error",
    "install_error_handlers",
    "internal_error_response",
]

log = logging.getLogger("tsunagu.admin")

#: the largest request body the admin API reads (a definitions file of a few thousand segments)
MAX_BODY_BYTES = 1024 * 1024
#: a Datahub import's file (streamed to disk, never held in memory): 20 GB unless set
MAX_IMPORT_BYTES = int(os.environ.get("TSUNAGU_MAX_IMPORT_BYTES", str(20 << 30)))
_IMPORT_PATH = re.compile(r".*(/api/v1/tables/[^/]+/imports|/datahub/import)")

#: every status an admin error has, and what it means (the OpenAPI descriptions)
STATUSES = {
    400: "Invalid input: a parameter or a field of the body, each named in `errors`.",
    401: "The API token is missing or unknown (`Authorization: Bearer <api token>`).",
    404: "Not found in this workspace.",
    409: "Conflicts with the workspace as it is (another definition reads it).",
    413: f"The body is larger than {MAX_BODY_BYTES // 1024} KB.",
    500: "Internal error (a defect, logged with its traceback); the connection is closed after it.",
    503: "The workspace is opening or recovering from a storage error: retry shortly.",
}
#: the error class of each status Starlette or FastAPI may raise, so its code is ours
_CLASSES: dict[int, type[TsunaguError]] = {
    400: InvalidInput, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed, 409: Conflict,
    413: PayloadTooLarge, 422: InvalidInput, 503: Unavailable,
}  # fmt: skip
#: the codes of other statuses, fixed here (Python renames a phrase now and then: 413 in 3.13)
_CODES = {415: "unsupported_media_type", 429: "too_many_requests"}
_NOSNIFF = (b"x-content-type-options", b"nosniff")


class ErrorField(BaseModel):
    field: str = Field(description="the parameter, or the path in the body (`definitions[2].rule.all[0].op`)")
    reason: str
    index: int | SkipJsonSchema[None] = Field(default=None, description="the item's position, in a list")


class ErrorBody(BaseModel):
    status: int = Field(description="the HTTP status again")
    code: str = Field(examples=["invalid_input"], description="stable, for programs: invalid_input, not_found, …")
    message: str = Field(description="for people: every field and its reason")
    errors: list[ErrorField] | SkipJsonSchema[None] = Field(default=None, description="each bad field (if any)")


class Error(BaseModel):
    """The one shape of every error: ingest's, the admin API's, the admin UI's JSON."""

    error: ErrorBody
    code: str = Field(description="`error.code` again, where the Segment-spec SDKs read it")
    message: str = Field(description="`error.message` again, where the Segment-spec SDKs read it")


def _render(body: dict[str, Any]) -> bytes:
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a message quoting text that is not valid Unicode: escape it
        return json.dumps(body, separators=(",", ":")).encode()


class _ErrorJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return _render(content)


def error_response(
    err: TsunaguError, headers: Mapping[str, str] | None = None, *, challenge: str | None = 'Bearer realm="tsunagu"'
) -> JSONResponse:
    """`err` in the one shape. A 401 carries `WWW-Authenticate: <challenge>` (none for the
    UI, whose credential is its session cookie, not a scheme a client could answer)."""
    extra = dict(headers or {})
    if err.status == 401 and challenge:
        extra["WWW-Authenticate"] = challenge
    if err.status == 413:  # the rest of the body is not read: the connection cannot carry another request
        extra["Connection"] = "close"
    return _ErrorJSON(err.to_dict(), status_code=err.status, headers=extra or None)


def internal_error_response() -> JSONResponse:
    """The answer to a defect (logged by the caller): 500, and the connection closed after it."""
    return error_response(TsunaguError("internal error; see the server log"), {"Connection": "close"})


class _HTTPError(TsunaguError):
    """A status no class of ours has (415, 429, ...), in the one shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        try:
            phrase = re.sub(r"[^a-z]+", "_", HTTPStatus(status).phrase.lower()).strip("_")
        except ValueError:
            phrase = "http_error"
        self.code = _CODES.get(status, phrase)


def http_error(status: int, message: str) -> TsunaguError:
    """An HTTP status raised by Starlette or FastAPI as one of our errors (its code ours)."""
    cls = _CLASSES.get(status)
    return cls(message) if cls is not None else _HTTPError(status, message)


def _location(loc: tuple[Any, ...]) -> str:
    """`("body", "definitions", 3, "kind")` as `definitions[3].kind`; `("query", "limit")` as `limit`."""
    out = ""
    for part in loc[1:]:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or str(loc[0])


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    out = []
    for e in exc.errors():
        loc = tuple(e.get("loc", ("body",)))
        if e.get("type") == "json_invalid":
            at = f" at character {loc[1]}" if len(loc) > 1 else ""
            out.append(FieldError("body", f"is not valid JSON ({e.get('ctx', {}).get('error', e['msg'])}{at})"))
        else:
            out.append(FieldError(_location(loc), str(e["msg"])))
    return out


def _methods_of(app: FastAPI, path: str) -> list[str]:
    """The methods the description has for a path, by its most literal template
    (`/segments/overlap` before `/segments/{name}`). Starlette's own `Allow` names only
    the first route's, and every method is a route of its own here."""
    matching = [(template.count("{"), item) for template, item in app.openapi().get("paths", {}).items()
                if compile_path(template)[0].match(path)]  # fmt: skip
    fewest = min((n for n, _ in matching), default=0)
    return sorted({method.upper() for n, item in matching if n == fewest for method in item})


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app raises answered in the one shape (a defect: by `ServerErrors`)."""

    @app.exception_handler(TsunaguError)
    async def _tsunagu_error(request: Request, exc: TsunaguError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        content_type = request.headers.get("content-type", "")
        if "json" not in content_type and any(e.field == "body" for e in errors):
            # FastAPI reads a body as JSON only when the request says it is
            errors = [FieldError("body", "must be JSON, sent with `Content-Type: application/json`")]
        return error_response(InvalidInput.for_fields(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            err: TsunaguError = NotFound(f"no such endpoint: {request.method} {request.url.path}")
        elif exc.status_code == 405:
            allowed = ", ".join(_methods_of(app, request.url.path))
            err = _HTTPError(405, f"{request.method} is not a method of {request.url.path}: use {allowed}")
            return error_response(err, {"Allow": allowed})
        elif exc.status_code == 400:  # FastAPI's JSON parser failed (nesting too deep for it, not UTF-8, …)
            why = exc.__cause__
            reason = "is nested too deep to read" if isinstance(why, RecursionError) else f"is not JSON ({why})"
            err = InvalidInput.for_field("body", reason)
        elif exc.status_code == 413:
            err = PayloadTooLarge.for_field("body", f"is larger than {MAX_BODY_BYTES // 1024} KB")
        else:
            err = http_error(exc.status_code, str(exc.detail))
        return error_response(err, exc.headers)

    app.add_middleware(LimitBody)
    app.add_middleware(ServerErrors)  # added last: outermost, it sees what LimitBody answers too


class LimitBody:
    """Read at most `MAX_BODY_BYTES` of a request's body (under `prefix`); answer 413 beyond.

    A declared `Content-Length` over the limit is refused before reading anything; a
    chunked body is counted as it arrives and raises a 413 `HTTPException` for the app's
    handler. Either way in the one error shape (Starlette's own limit answers plain text
    once the length is declared too large).
    """

    def __init__(self, app: ASGIApp, prefix: str = "/api/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        limit = MAX_IMPORT_BYTES if _IMPORT_PATH.fullmatch(scope["path"]) else MAX_BODY_BYTES
        declared = dict(scope.get("headers", ())).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            err = PayloadTooLarge.for_field("body", f"is larger than {_size(limit)}")
            await error_response(err)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise StarletteHTTPException(413)  # answered by the handler above
            return message

        await self.app(scope, counted, send)


def _size(n: int) -> str:
    return f"{n // 1024} KB" if n < 1 << 30 else f"{n / (1 << 30):g} GB"


class ServerErrors:
    """A defect answers the one error shape (500) with `Connection: close`, logged once.

    Starlette's outermost ServerErrorMiddleware also answers a 500, then re-raises for the
    server to log; uvicorn, finding the response already sent, drops the socket, so a
    keep-alive client saw its connection reset, with no `Connection: close`. This
    middleware sits just inside it, answers and does not re-raise: the server sees a
    complete response, sends it, then closes the connection as the header says, and the
    process goes on serving. A failure after the response was sent whole is only logged;
    one while a streamed body is under way is re-raised: closing the connection is the only
    way to tell the client the body was cut short (uvicorn logs it, once).

    It also marks every response `X-Content-Type-Options: nosniff`: a browser must not
    read an error's JSON, or a CSV download, as HTML.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = finished = False

        async def sending(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", ()))
                if not any(k.lower() == _NOSNIFF[0] for k, _ in headers):
                    headers.append(_NOSNIFF)
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if started and not finished:
                raise
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if finished:
                return
            body = _render(TsunaguError("internal error; see the server log").to_dict())
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                        _NOSNIFF,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the errors its own code raises (`document_errors` adds the rest)."""
    return {status: {"model": Error, "description": STATUSES[status]} for status in statuses}


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def document_errors(app: FastAPI) -> None:
    """Serve an OpenAPI description whose every operation lists the errors it can answer.

    Added to each operation, besides what its route declares (`error_responses`): 500
    always; 401 and 503 where it takes the API token; 400 where it has query parameters or
    a body (validation answers 400, so FastAPI's 422 is removed); 413 where it has a body.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        for name, model in (("Error", Error), ("ErrorBody", ErrorBody), ("ErrorField", ErrorField)):
            if name not in components:
                components[name] = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components[name].pop("$defs", None)
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                responses.pop("422", None)
                wanted = {500}
                if operation.get("security"):
                    wanted |= {401, 503}
                # a path parameter is a plain string: only a query or a body can fail validation
                if "requestBody" in operation or any(p.get("in") != "path" for p in operation.get("parameters", ())):
                    wanted.add(400)
                if "requestBody" in operation:
                    wanted.add(413)
                for status in sorted(wanted):
                    responses.setdefault(str(status), {"description": STATUSES[status], "content": _error_content()})
                operation["responses"] = dict(sorted(responses.items()))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
