"""Admin UI views (Starlette + Jinja2, server-rendered, no third-party front-end code).

Every page needs a login: a workspace user's email and password (argon2id), then a
session kept on the server (admin/sessions.py) whose random id travels in an HttpOnly,
SameSite=Lax cookie; the session names the workspace, so a user of one workspace can never
open another's people. Forms carry a CSRF token bound to the session (or, for the login
form, to a cookie: double submit). Failed logins are throttled per account and per
address (`ControlStore.attempt_login`). Every response carries the security headers of
admin/headers.py. What the pages' scripts fetch as JSON answers every error in the one
shape (admin/json_endpoints.py).
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import msgspec
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from ..api.errors import LimitBody
from ..api.overview import workspace_overview
from ..core.errors import TsunaguError
from ..sql.overview import CHANNELS
from ..sql.search import people_totals_query
from ..sql.timeline import live_feed_query
from .account import account_routes
from .datahub import datahub_routes
from .headers import SecurityHeaders
from .i18n import LANGUAGES, pick_language, translator, wait_text
from .karte import Labels, event_text, match_reason, shopping, store_names
from .overview import DAY_CHOICES, H, W, bar_chart, day_labels, mix_label
from .segment_report import segment_report_routes
from .segments import data_rows, segment_routes
from .sessions import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_HOURS,
    LoginRequired,
    client_address,
    current_session,
    retry_after,
    set_session_cookie,
)
from .timeline import group_visits

if TYPE_CHECKING:
    from ..app import Platform
    from ..pipeline import WorkspacePipeline
    from ..storage.control import Session

__all__ = ["build_ui"]

HERE = Path(__file__).parent
SYSTEM_TYPES = ("merge", "identity_conflict")


def build_ui(platform: Platform) -> ASGIApp:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters["yen"] = lambda v: f"¥{v:,.0f}" if isinstance(v, (int, float)) else ("" if v is None else str(v))

    def tz(pipe: WorkspacePipeline) -> ZoneInfo:
        return ZoneInfo(pipe.config.timezone)

    def language(request: Request) -> str:
        return pick_language(request.cookies.get("tsg_lang"), request.headers.get("accept-language"))

    def render(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        lang = language(request)
        html = env.get_template(name).render(
            request=request, t=translator(lang), lang=lang, languages=LANGUAGES, path=request.url.path, **ctx
        )
        return HTMLResponse(html, status_code=status)  # headers: SecurityHeaders

    def session(request: Request) -> Session:
        return current_session(platform, request)

    async def pipeline_for(request: Request) -> tuple[Session, WorkspacePipeline]:
        s = session(request)
        return s, await platform.pipeline(s.workspace)

    # -- login ---------------------------------------------------------------------------

    async def login(request: Request) -> Response:
        error = None
        status = 200
        wait_ms = 0
        if request.method == "POST":
            form = await request.form()
            token = request.cookies.get(LOGIN_CSRF_COOKIE)
            if not token or form.get("csrf") != token:
                error, status = "csrf_failed", 400
            else:
                ws = str(form.get("workspace", "")).strip()
                email = str(form.get("email", "")).strip().lower()
                password = str(form.get("password", ""))
                now = platform.clock()
                attempt = await asyncio.to_thread(
                    platform.control.attempt_login, ws, email, password, client_address(request), now
                )
                if attempt.ok:
                    old = request.cookies.get(SESSION_COOKIE)
                    if old:  # a new login never keeps an old session id alive
                        platform.control.end_session(old)
                    session_id, _ = platform.control.create_session(ws, email, now, now + SESSION_HOURS * 3600_000)
                    resp: Response = RedirectResponse("/ui/", status_code=303)
                    set_session_cookie(resp, request, session_id)
                    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui")
                    return resp
                wait_ms = attempt.retry_after_ms
                error, status = ("too_many_attempts", 429) if wait_ms else ("login_failed", 400)
        token = secrets.token_urlsafe(24)
        message = translator(language(request))(error) if error else None
        if message and wait_ms:
            message = message.replace("{wait}", wait_text(language(request), wait_ms))
        # what to pre-fill: the workspace just tried, the one a link names, or the only one there is
        typed = str(form.get("workspace", "")).strip() if request.method == "POST" else ""
        prefill = typed or request.query_params.get("workspace", "")
        if not prefill:
            names = [w.name for w in await asyncio.to_thread(platform.control.workspaces)]
            prefill = names[0] if len(names) == 1 else ""
        resp = render(request, "login.html", status=status, csrf=token, error=message, workspace=prefill)
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/ui")
        if wait_ms:
            resp.headers["Retry-After"] = retry_after(wait_ms)
        return resp

    async def logout(request: Request) -> Response:
        s = session(request)
        form = await request.form()
        if form.get("csrf") != s.csrf:
            return Response("CSRF token missing or wrong", status_code=403)
        platform.control.end_session(request.cookies[SESSION_COOKIE])
        resp = RedirectResponse("/ui/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE, path="/ui")
        return resp

    async def set_language(request: Request) -> Response:
        lang = request.query_params.get("to", "ja")
        nxt = request.query_params.get("next", "/ui/")
        if not nxt.startswith("/ui"):  # never an open redirect
            nxt = "/ui/"
        resp = RedirectResponse(nxt, status_code=303)
        if lang in LANGUAGES:
            resp.set_cookie("tsg_lang", lang, max_age=365 * 86400, samesite="lax", path="/ui")
        return resp

    # -- pages ---------------------------------------------------------------------------

    async def overview(request: Request) -> Response:
        s, pipe = await pipeline_for(request)
        raw = request.query_params.get("days", "")
        days = int(raw) if raw.isdigit() and int(raw) in DAY_CHOICES else 30
        now = platform.clock()
        report = await workspace_overview(pipe, days, now)  # flushes first
        q = pipe.analytics.query
        ((people, identified),) = await asyncio.to_thread(q, *people_totals_query())
        set_aside = sum((await asyncio.to_thread(pipe.quarantine.counts)).values())
        lang = language(request)
        return render(
            request, "overview.html", s=s, people=people, identified=identified,
            share=(identified / people * 100) if people else 0, set_aside=set_aside, o=report, days=days,
            day_choices=DAY_CHOICES, channels=CHANNELS, W=W, H=H,
            revenue_chart=bar_chart(report.daily, "revenue", stacked=True),
            buyers_chart=bar_chart(report.daily, "buyers", stacked=False),
            day_labels=day_labels([d["day"] for d in report.daily]),
            mix=lambda v: mix_label(v, lang), zone_label=zone_label(tz(pipe), now),
        )  # fmt: skip

    async def people(request: Request) -> Response:
        s, pipe = await pipeline_for(request)
        qtext = request.query_params.get("q", "").strip()
        offset = max(0, int(request.query_params.get("offset", "0") or 0))
        limit = 50
        from ..api.admin import count_people, search_people

        ids, more = await search_people(pipe, q=qtext or None, trait=None, value=None, limit=limit, offset=offset)
        total = await count_people(pipe, q=qtext or None, trait=None, value=None)
        rows = [p for pid in ids if (p := pipe.engine.get(pid))]
        labels = await labels_for(request, pipe)
        reasons = {p.person_id: match_reason(p, qtext, labels) for p in rows} if qtext else {}
        zone = tz(pipe)
        return render(
            request, "people.html", s=s, q=qtext, people=rows, offset=offset, limit=limit, more=more, total=total,
            reasons=reasons, lab=labels, fmt=lambda ms: _fmt(ms, zone), zone_label=zone_label(zone, platform.clock()),
        )  # fmt: skip

    async def karte(request: Request) -> Response:
        s, pipe = await pipeline_for(request)
        person = pipe.engine.get(request.path_params["person_id"])
        if person is None:
            return render(request, "not_found.html", status=404, s=s)
        channel = request.query_params.get("channel") or None
        event = request.query_params.get("event") or None
        rows, _ = await pipe.timeline(
            person, limit=1000, channels=[channel] if channel else (), events=[event] if event else ()
        )
        zone = tz(pipe)
        visits = group_visits(rows, zone)
        names = sorted({r["event"] for r in rows if r["type"] == "track" and r["event"]})
        now = platform.clock()
        live = pipe.engine.live
        today = live.day_of(now)
        from ..api.admin import user_data

        computed = {k: v for k, v in live.computed_values(person, now).items() if v is not None}
        folded = await pipe.user_data(person)
        labels = await labels_for(request, pipe)
        return render(
            request, "karte.html", s=s, p=person, traits=person.traits, visits=visits, channel=channel,
            event=event, event_names=names, fmt=lambda ms: _fmt(ms, zone), computed=computed, lab=labels,
            shop=shopping(person, folded, computed, today), data=data_rows(user_data(folded, today), limit=300),
            zone_label=zone_label(zone, now),
        )  # fmt: skip

    async def live(request: Request) -> Response:
        s, pipe = await pipeline_for(request)
        await pipe.flush()
        rows = await asyncio.to_thread(pipe.analytics.query_dicts, *live_feed_query(50))
        labels = await labels_for(request, pipe)
        for r in rows:
            for k in ("properties", "traits"):
                r[k] = msgspec.json.decode(r[k]) if r[k] else {}
            r["person"] = pid = pipe.engine.canonical(r["person_id"]) or r["person_id"]
            person = pipe.engine.persons.get(pid)
            # who, in words: the name, else the member id, else the anonymous id the event came with
            ids = person.identifiers if person is not None else {}
            name = person.traits.get("name") if person is not None else None
            r["who"] = name or (ids.get("user_id") or [None])[0] or r["user_id"] or r["anonymous_id"] or pid
            r["what"] = event_text(r, labels)
        zone = tz(pipe)
        template = "live_rows.html" if request.query_params.get("fragment") else "live.html"
        return render(
            request, template, s=s, rows=rows, lab=labels, fmt=lambda ms: _fmt(ms, zone, seconds=True),
            zone_label=zone_label(zone, platform.clock()),
        )  # fmt: skip

    async def quarantine(request: Request) -> Response:
        s, pipe = await pipeline_for(request)
        before = request.query_params.get("before")
        limit = 50
        entries = await asyncio.to_thread(
            pipe.quarantine.entries, limit=limit + 1, before=int(before) if before and before.isdigit() else None
        )
        more = len(entries) > limit
        entries = entries[:limit]
        for e in entries:
            e["body_text"] = e["body"].decode("utf-8", "replace")
            e["person"] = pipe.engine.canonical(e["person_id"]) if e["person_id"] else None
        zone = tz(pipe)
        return render(
            request, "quarantine.html", s=s, entries=entries, fmt=lambda ms: _fmt(ms, zone, seconds=True),
            zone=pipe.config.timezone, older=entries[-1]["id"] if more else None,
        )  # fmt: skip

    async def home(request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=307)

    def guarded(fn: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except LoginRequired:
                resp = RedirectResponse("/ui/login", status_code=303)
                if SESSION_COOKIE in request.cookies:  # ended or expired: let the browser forget it
                    resp.delete_cookie(SESSION_COOKIE, path="/ui")
                return resp
            except TsunaguError as exc:
                return Response(exc.message, status_code=exc.status)

        return endpoint

    routes = [
        Route("/", guarded(overview)),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", guarded(logout), methods=["POST"]),
        Route("/lang", set_language),
        Route("/people", guarded(people)),
        Route("/people/{person_id}", guarded(karte)),
        Route("/live", guarded(live)),
        Route("/quarantine", guarded(quarantine)),
        *segment_routes(platform, render, pipeline_for, guarded),
        *segment_report_routes(platform, render, pipeline_for, guarded),
        *account_routes(platform, render, session, guarded),
        *datahub_routes(platform, render, pipeline_for, guarded, _fmt),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    # every body read at most to the API's limit: the JSON endpoints answer 413 in the one shape
    return SecurityHeaders(LimitBody(Starlette(routes=routes), prefix="/"))


async def labels_for(request: Request, pipe: WorkspacePipeline) -> Labels:
    """The words for this request's page: its language, the workspace's stores and descriptions."""
    lang = pick_language(request.cookies.get("tsg_lang"), request.headers.get("accept-language"))
    descriptions = {
        key: d.body["description"]
        for key, d in pipe.engine.live.definitions.items()
        if isinstance(d.body.get("description"), str) and d.body["description"]
    }
    return Labels(lang, await store_names(pipe), descriptions)


def zone_label(zone: ZoneInfo, now: int) -> str:
    """The workspace's zone as the pages show it next to times: `Asia/Tokyo (JST)`."""
    abbrev = datetime.fromtimestamp(now / 1000, UTC).astimezone(zone).strftime("%Z")
    return f"{zone.key} ({abbrev})" if abbrev and abbrev != zone.key else zone.key


def _fmt(ms: int | None, zone: ZoneInfo, *, seconds: bool = False) -> str:
    if ms is None:
        return "-"
    dt = datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone)
    return dt.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
