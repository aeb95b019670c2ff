"""The admin UI's JSON endpoints (what its scripts fetch) answer every error in the one shape.

The pages answer a person: a redirect to the login, an HTML page, a line of text. A script
reading JSON needs JSON instead, whatever went wrong, so a JSON endpoint is routed by
`json_route`: no live session is a 401 (not a redirect a `fetch` would follow to the
login page's HTML), a wrong method a 405 with `Allow`, a body over the API's limit a 413
(`LimitBody` in `build_ui`), a `TsunaguError` its own status, and a defect a 500 logged
once with its traceback, all as `TsunaguError.to_dict()`, as ingest and the admin API.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..api.errors import MAX_BODY_BYTES, error_response, http_error, internal_error_response
from ..core.errors import InvalidInput, MethodNotAllowed, PayloadTooLarge, TsunaguError, Unauthorized
from .sessions import LoginRequired

__all__ = ["json_body", "json_route"]

log = logging.getLogger("tsunagu.admin")

# the route takes every method and the endpoint refuses the others: Starlette's own 405 is text
_EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def json_route(path: str, fn: Callable[[Request], Awaitable[Response]], methods: tuple[str, ...] = ("POST",)) -> Route:
    """A route to `fn` answering every error in the one shape."""
    return Route(path, _json_endpoint(fn, methods), methods=_EVERY_METHOD)


def _json_endpoint(
    fn: Callable[[Request], Awaitable[Response]], methods: tuple[str, ...]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            if request.method not in methods:
                allowed = ", ".join(methods)
                wrong = MethodNotAllowed(f"{request.method} is not a method of {request.url.path}: use {allowed}")
                return error_response(wrong, {"Allow": allowed})
            return await fn(request)
        except LoginRequired:
            gone = Unauthorized.for_field("tsg_session", "no live session: log in again at /ui/login")
            return error_response(gone, challenge=None)
        except TsunaguError as exc:
            return error_response(exc, challenge=None)
        except HTTPException as exc:  # LimitBody counted a chunked body past the limit
            if exc.status_code == 413:
                return error_response(PayloadTooLarge.for_field("body", f"is larger than {MAX_BODY_BYTES // 1024} KB"))
            return error_response(http_error(exc.status_code, str(exc.detail)), exc.headers, challenge=None)
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            return internal_error_response()

    return endpoint


async def json_body(request: Request) -> dict[str, Any]:
    """The request's body, a JSON object, or `InvalidInput` naming `body`."""
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        reason = "is nested too deep to read" if isinstance(exc, RecursionError) else f"is not valid JSON ({exc})"
        raise InvalidInput.for_field("body", reason) from None
    if not isinstance(data, dict):
        raise InvalidInput.for_field("body", "must be a JSON object")
    return data
