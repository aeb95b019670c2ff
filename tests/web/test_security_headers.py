"""Every response of the admin UI carries nosniff, a Referrer-Policy, the CSP and
X-Frame-Options (a real `tsunagu serve`, real HTTP), and the CSP breaks no page (Chromium)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tsunagu.admin.headers import CONTENT_SECURITY_POLICY, SecurityHeaders
from tsunagu.storage.control import ACCOUNT_LIMIT, ControlStore

from ..conftest import Server, Workspace

PASSWORD = "correct horse battery"
EMAIL = "staff@example.jp"


@contextmanager
def _logged_in(server: Server, ws: Workspace) -> Iterator[httpx.Client]:
    ControlStore(server.data_dir / "control.sqlite").create_user(ws.name, EMAIL, PASSWORD)
    with httpx.Client(base_url=server.url, follow_redirects=False) as c:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/login").text).group(1)  # type: ignore[union-attr]
        r = c.post("/ui/login", data={"csrf": token, "workspace": ws.name, "email": EMAIL, "password": PASSWORD})
        assert r.status_code == 303
        yield c


def _too_many(c: httpx.Client, ws: Workspace) -> httpx.Response:
    # an address of its own (uvicorn believes X-Forwarded-For from 127.0.0.1), so the
    # other tests' logins from this machine are not slowed down
    headers = {"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250 + 1}"}
    for _ in range(ACCOUNT_LIMIT + 1):
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/login").text).group(1)  # type: ignore[union-attr]
        form = {"csrf": token, "workspace": ws.name, "email": "nobody@example.jp", "password": "guess"}
        r = c.post("/ui/login", data=form, headers=headers)
    return r


# what the test does with a logged-in client -> the status it expects
CASES: dict[str, tuple[Callable[[httpx.Client, Workspace], httpx.Response], int]] = {
    "the login page": (lambda c, ws: httpx.get(f"{c.base_url}/ui/login"), 200),
    "a failed login": (
        lambda c, ws: httpx.post(f"{c.base_url}/ui/login", data={"csrf": "x", "workspace": ws.name}),
        400,
    ),
    "a refused login (429)": (_too_many, 429),
    "a page": (lambda c, ws: c.get("/ui/"), 200),
    "the account page": (lambda c, ws: c.get("/ui/account"), 200),
    "the live fragment": (lambda c, ws: c.get("/ui/live?fragment=1"), 200),
    "a redirect to the login": (lambda c, ws: httpx.get(f"{c.base_url}/ui/people", follow_redirects=False), 303),
    "the language switch": (lambda c, ws: c.get("/ui/lang?to=en&next=/ui/people"), 303),
    "the root's redirect to the UI": (lambda c, ws: httpx.get(f"{c.base_url}/", follow_redirects=False), 307),
    "the redirect from /ui to /ui/": (lambda c, ws: httpx.get(f"{c.base_url}/ui", follow_redirects=False), 307),
    "a static stylesheet": (lambda c, ws: c.get("/ui/static/style.css"), 200),
    "a static script": (lambda c, ws: c.get("/ui/static/builder.js"), 200),
    "a missing static file": (lambda c, ws: c.get("/ui/static/nope.css"), 404),
    "an unknown page": (lambda c, ws: c.get("/ui/nope"), 404),
    "an unknown person": (lambda c, ws: c.get("/ui/people/p_nobody"), 404),
    "a wrong method": (lambda c, ws: c.get("/ui/logout"), 405),
    "a wrong CSRF token": (lambda c, ws: c.post("/ui/logout", data={"csrf": "wrong"}), 403),
    "a JSON refusal": (lambda c, ws: c.post("/ui/segments/preview", json={}, headers={"X-CSRF-Token": "x"}), 403),
    "the logout": (
        lambda c, ws: c.post(
            "/ui/logout",
            data={"csrf": re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/").text).group(1)},  # type: ignore[union-attr]
        ),
        303,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_ui_response_carries_the_security_headers(server: Server, workspace: Workspace, case: str) -> None:
    act, status = CASES[case]
    with _logged_in(server, workspace) as c:
        r = act(c, workspace)
    assert r.status_code == status, r.text[:300]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert r.headers["x-frame-options"] == "DENY"
    if "static" in case:  # our own files may be cached; nothing with data in it may
        assert "no-store" not in r.headers.get("cache-control", "")
    else:
        assert r.headers["cache-control"] == "no-store"


def test_static_files_say_what_they_are_so_nosniff_keeps_them_working(server: Server) -> None:
    for path, kind in (("style.css", "text/css"), ("builder.js", "javascript"), ("live.js", "javascript")):
        r = httpx.get(f"{server.url}/ui/static/{path}")
        assert r.status_code == 200 and kind in r.headers["content-type"]


def test_the_policy_blocks_no_script_style_or_fetch_of_any_page(browser: Any, server: Server) -> None:
    ws = server.create_workspace()
    events = [
        {"type": "identify", "userId": "M-1", "traits": {"name": "鈴木 花子", "rank": "gold"}},
        {"type": "track", "userId": "M-1", "event": "buy", "properties": {"revenue": 3000},
         "context": {"channel": "store", "store_id": "S001"}},
    ]  # fmt: skip
    assert ws.ingest("/v1/batch", {"batch": events}).status_code == 200
    with ws.client() as api:
        assert api.put(
            "/api/v1/segments/gold", json={"rule": {"trait": "rank", "op": "eq", "value": "gold"}}
        ).is_success
    person = ws.person("user_id", "M-1")["person_id"]
    ControlStore(server.data_dir / "control.sqlite").create_user(ws.name, EMAIL, PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    # a violation fires this event in the page; the init script runs before any of the page's own
    context.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation', e => window.__violations.push("
        "e.violatedDirective + ' ' + e.blockedURI));"
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "favicon" not in m.text else None)
    page.goto(f"{server.url}/ui/login")
    page.fill("input[name=workspace]", ws.name)
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/ui/")
    for path, ready in [
        ("/ui/", ".stat .value"),
        ("/ui/people?q=M-1", "table.list a"),
        (f"/ui/people/{person}", ".visit"),
        ("/ui/segments", "table"),
        ("/ui/segments/new", "#live-count[data-count='1']"),  # builder.js ran and fetched the count
        ("/ui/segments/gold/edit", "#rule-tree .cond"),
        ("/ui/segments/gold/report", "svg"),
        ("/ui/account", ".password-form"),
    ]:
        page.goto(server.url + path)
        page.wait_for_selector(ready)
        assert page.evaluate("window.__violations") == [], path
        # the stylesheet applied (a blocked one would leave the header white)
        assert page.evaluate("getComputedStyle(document.querySelector('header.top')).backgroundColor") == (
            "rgb(29, 29, 31)"
        ), path
    page.goto(f"{server.url}/ui/live")
    page.wait_for_function("document.querySelectorAll('#live-rows tr').length >= 2")
    with page.expect_response(lambda r: "fragment=1" in r.url):  # live.js's refresh is let through
        pass
    assert page.evaluate("window.__violations") == []
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
    context.close()


def test_an_unexpected_error_answers_500_with_the_headers_too() -> None:
    # a bug cannot be asked for over HTTP, so the middleware gets one in-process
    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    async def get() -> httpx.Response:
        app = SecurityHeaders(Starlette(routes=[Route("/broken", broken)]))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
            return await client.get("/broken")

    with ThreadPoolExecutor(1) as pool:  # a thread of its own: Playwright's loop may be running in this one
        r = pool.submit(asyncio.run, get()).result()
    assert r.status_code == 500
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert r.headers["referrer-policy"] == "same-origin"
