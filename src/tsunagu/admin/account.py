"""The account page: this session, the user's other sessions, and a password change.

A password change needs the current password, checked through the same throttle as the
login (`ControlStore.attempt_login`), so a borrowed session cannot guess it quickly. It
ends every other session of the user and keeps this one; "end all other sessions" does
the same without a new password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .i18n import pick_language, translator, wait_text
from .sessions import SESSION_COOKIE, client_address, retry_after

if TYPE_CHECKING:
    from ..app import Platform
    from ..storage.control import Session

__all__ = ["account_routes"]


def account_routes(
    platform: Platform,
    render: Callable[..., Response],
    session: Callable[[Request], Session],
    guarded: Callable[[Any], Any],
) -> list[Route]:
    """The page's routes, for `build_ui` (which owns sessions and rendering)."""

    def page(request: Request, s: Session, *, status: int = 200, error: str | None = None) -> Response:
        info = platform.control.workspace(s.workspace)
        zone = ZoneInfo(info.config.timezone if info else "UTC")
        now = platform.clock()
        others = len(platform.control.sessions(s.workspace, s.email, now)) - 1
        t = translator(pick_language(request.cookies.get("tsg_lang"), request.headers.get("accept-language")))
        notices = []
        q = request.query_params
        if q.get("changed"):
            notices.append(t("password_changed"))
        if q.get("ended", "").isdigit():
            notices.append(t("sessions_ended").replace("N", q["ended"]))

        def fmt(ms: int) -> str:
            return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M")

        return render(
            request, "account.html", status=status, s=s, others=max(others, 0), notices=notices, error=error,
            fmt=fmt, min_password=platform.control.min_password,
        )  # fmt: skip

    async def account(request: Request) -> Response:
        return page(request, session(request))

    async def change_password(request: Request) -> Response:
        s = session(request)
        form = await request.form()
        if form.get("csrf") != s.csrf:
            return Response("CSRF token missing or wrong", status_code=403)
        lang = pick_language(request.cookies.get("tsg_lang"), request.headers.get("accept-language"))
        t = translator(lang)
        current, new, again = (str(form.get(k, "")) for k in ("current", "new", "again"))
        if new != again:
            return page(request, s, status=400, error=t("passwords_differ"))
        if len(new) < platform.control.min_password:
            return page(request, s, status=400, error=t("password_too_short"))
        attempt = await asyncio.to_thread(
            platform.control.attempt_login, s.workspace, s.email, current, client_address(request), platform.clock()
        )
        if attempt.retry_after_ms:
            message = t("too_many_attempts").replace("{wait}", wait_text(lang, attempt.retry_after_ms))
            resp = page(request, s, status=429, error=message)
            resp.headers["Retry-After"] = retry_after(attempt.retry_after_ms)
            return resp
        if not attempt.ok:
            return page(request, s, status=400, error=t("wrong_current_password"))
        ended = await asyncio.to_thread(
            platform.control.set_password, s.workspace, s.email, new, keep_session=request.cookies[SESSION_COOKIE]
        )
        return RedirectResponse(f"/ui/account?changed=1&ended={ended}", status_code=303)

    async def end_other_sessions(request: Request) -> Response:
        s = session(request)
        form = await request.form()
        if form.get("csrf") != s.csrf:
            return Response("CSRF token missing or wrong", status_code=403)
        ended = platform.control.end_sessions(s.workspace, s.email, keep=request.cookies[SESSION_COOKIE])
        return RedirectResponse(f"/ui/account?ended={ended}", status_code=303)

    return [
        Route("/account", guarded(account)),
        Route("/account/password", guarded(change_password), methods=["POST"]),
        Route("/account/sessions", guarded(end_other_sessions), methods=["POST"]),
    ]
