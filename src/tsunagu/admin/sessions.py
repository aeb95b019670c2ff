"""The UI's sessions: the cookie, the server-side row it names, and the client's address.

The cookie holds only a random session id (32 bytes); the control database keeps its
SHA-256 hash with the workspace, the email, the session's CSRF token and its expiry
(`ControlStore.create_session`). Every request looks the row up, so logging out, a
password change or a reset from the CLI ends a session at once, even for a copy of the
cookie, and a session ends `SESSION_HOURS` after the login whatever happens.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from ..app import Platform
    from ..storage.control import Session

__all__ = [
    "LOGIN_CSRF_COOKIE",
    "SESSION_COOKIE",
    "SESSION_HOURS",
    "LoginRequired",
    "client_address",
    "current_session",
    "retry_after",
    "set_session_cookie",
]

SESSION_COOKIE = "tsg_session"
LOGIN_CSRF_COOKIE = "tsg_login_csrf"
SESSION_HOURS = 12


class LoginRequired(Exception):
    """No live session: the view answers with a redirect to the login."""


def current_session(platform: Platform, request: Request) -> Session:
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        raise LoginRequired
    session = platform.control.session(session_id, platform.clock())
    if session is None:
        raise LoginRequired
    return session


def set_session_cookie(resp: Response, request: Request, session_id: str) -> None:
    resp.set_cookie(
        SESSION_COOKIE, session_id, max_age=SESSION_HOURS * 3600, httponly=True, samesite="lax",
        secure=request.url.scheme == "https", path="/ui",
    )  # fmt: skip


def client_address(request: Request) -> str:
    """The address the login throttle counts: the TCP peer as uvicorn reports it.

    Behind a reverse proxy that is the proxy's address, unless uvicorn trusts the proxy's
    X-Forwarded-For (by default only from 127.0.0.1 and ::1; `FORWARDED_ALLOW_IPS`)."""
    return request.client.host if request.client else ""


def retry_after(ms: int) -> str:
    """The `Retry-After` value (whole seconds, rounded up) for a wait in milliseconds."""
    return str(max(1, math.ceil(ms / 1000)))
