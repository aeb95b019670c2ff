"""UI sessions live on the server: logout, a password change, a reset or a deletion from the
CLI end them at once, even for a copy of the cookie (a real `tsunagu serve`, real HTTP)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tsunagu.storage.control import ControlStore

from ..conftest import Server, Workspace
from .layout import no_overlap

PASSWORD = "correct horse battery"
NEW_PASSWORD = "battery staple horse"


def _user(server: Server, ws: Workspace, email: str = "staff@example.jp") -> str:
    ControlStore(server.data_dir / "control.sqlite").create_user(ws.name, email, PASSWORD)
    return email


@contextmanager
def _logged_in(
    server: Server, ws: Workspace, email: str, password: str = PASSWORD, **kw: Any
) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, **kw) as c:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/login").text)
        assert token
        form = {"csrf": token.group(1), "workspace": ws.name, "email": email, "password": password}
        r = c.post("/ui/login", data=form)
        assert r.status_code == 303 and r.headers["location"] == "/ui/", r.text
        yield c


def _csrf(c: httpx.Client, path: str = "/ui/account") -> str:
    page = c.get(path)
    assert page.status_code == 200, page.status_code
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def _copy(c: httpx.Client, server: Server) -> httpx.Client:
    """Another client holding a copy of `c`'s session cookie (as a thief would)."""
    return httpx.Client(base_url=server.url, cookies={"tsg_session": c.cookies["tsg_session"]})


def _opens(c: httpx.Client) -> bool:
    r = c.get("/ui/", follow_redirects=False)
    assert r.status_code in (200, 303), r.status_code
    return r.status_code == 200


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tsunagu", *args], capture_output=True, text=True)


def test_the_cookie_holds_only_a_random_id_that_the_control_database_keeps_hashed(
    server: Server, workspace: Workspace
) -> None:
    email = _user(server, workspace)
    with _logged_in(server, workspace, email) as c:
        sid = c.cookies["tsg_session"]
        assert len(sid) >= 43 and workspace.name not in sid and "." not in sid  # no signed payload
        db = server.data_dir / "control.sqlite"
        raw = db.read_bytes() + (db.with_name("control.sqlite-wal").read_bytes())
        assert sid.encode() not in raw


def test_a_cookie_copied_before_logout_is_refused_after_it(server: Server, workspace: Workspace) -> None:
    email = _user(server, workspace)
    with _logged_in(server, workspace, email) as c, _copy(c, server) as thief:
        assert _opens(thief)  # the copy works while the session lives
        csrf = _csrf(c, "/ui/")
        assert c.post("/ui/logout", data={"csrf": csrf}).status_code == 303
        r = thief.get("/ui/people", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/ui/login"
        assert 'tsg_session=""' in r.headers["set-cookie"]  # and the browser is told to forget it
        # nor does it work for the endpoints that take the session's CSRF token
        r = thief.post("/ui/segments/preview", json={"rule": {"did": "buy"}}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = thief.post("/ui/logout", data={"csrf": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/ui/login"
        assert not _opens(c)


def test_a_new_login_ends_the_session_its_browser_had(server: Server, workspace: Workspace) -> None:
    email = _user(server, workspace)
    with _logged_in(server, workspace, email) as c, _copy(c, server) as old:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/login").text).group(1)  # type: ignore[union-attr]
        c.post("/ui/login", data={"csrf": token, "workspace": workspace.name, "email": email, "password": PASSWORD})
        assert c.cookies["tsg_session"] != old.cookies["tsg_session"]
        assert _opens(c) and not _opens(old)


def test_a_password_change_ends_the_other_sessions_but_not_this_one(server: Server, workspace: Workspace) -> None:
    email = _user(server, workspace)
    en = {"headers": {"Accept-Language": "en"}}
    with _logged_in(server, workspace, email, **en) as me, _logged_in(server, workspace, email) as laptop:
        assert re.search(r'id="other-sessions">1<', me.get("/ui/account").text)
        r = me.post(
            "/ui/account/password",
            data={"csrf": _csrf(me), "current": PASSWORD, "new": NEW_PASSWORD, "again": NEW_PASSWORD},
        )
        assert r.status_code == 303 and r.headers["location"] == "/ui/account?changed=1&ended=1"
        page = me.get(r.headers["location"])
        assert "Password changed" in page.text and "Other sessions ended: 1" in page.text
        assert _opens(me) and not _opens(laptop)
    with httpx.Client(base_url=server.url) as c:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/login").text).group(1)  # type: ignore[union-attr]
        r = c.post("/ui/login", data={"csrf": token, "workspace": workspace.name, "email": email, "password": PASSWORD})
        assert r.status_code == 400  # the old password opens nothing
    with _logged_in(server, workspace, email, NEW_PASSWORD) as c:
        assert _opens(c)


@pytest.mark.parametrize(
    ("current", "new", "again", "message"),
    [
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", "The new passwords do not match"),
        (PASSWORD, "short", "short", "A password needs at least 8 characters"),
        ("not my password", NEW_PASSWORD, NEW_PASSWORD, "The current password is wrong"),
    ],
)
def test_a_refused_password_change_says_why_and_changes_nothing(
    server: Server, workspace: Workspace, current: str, new: str, again: str, message: str
) -> None:
    email = _user(server, workspace)
    en = {"headers": {"Accept-Language": "en"}}
    with _logged_in(server, workspace, email, **en) as me, _logged_in(server, workspace, email) as laptop:
        r = me.post("/ui/account/password", data={"csrf": _csrf(me), "current": current, "new": new, "again": again})
        assert r.status_code == 400 and message in r.text
        assert _opens(me) and _opens(laptop)
        assert me.post("/ui/account/password", data={"csrf": "wrong", "current": PASSWORD, "new": new,
                                                     "again": new}).status_code == 403  # fmt: skip
    with _logged_in(server, workspace, email) as c:  # the password is unchanged
        assert _opens(c)


def test_ending_all_other_sessions_keeps_this_one(server: Server, workspace: Workspace) -> None:
    email = _user(server, workspace)
    with (
        _logged_in(server, workspace, email) as me,
        _logged_in(server, workspace, email) as laptop,
        _logged_in(server, workspace, email) as tablet,
    ):
        r = me.post("/ui/account/sessions", data={"csrf": _csrf(me)})
        assert r.status_code == 303 and r.headers["location"] == "/ui/account?ended=2"
        assert _opens(me) and not _opens(laptop) and not _opens(tablet)
        assert re.search(r'id="other-sessions">0<', me.get("/ui/account").text)


def test_a_reset_or_a_deletion_from_the_cli_logs_the_user_out_of_the_running_server(
    server: Server, workspace: Workspace
) -> None:
    email = _user(server, workspace)
    d = str(server.data_dir)
    with _logged_in(server, workspace, email) as c:
        out = _run("user", "create", workspace.name, email, "--password", NEW_PASSWORD, "--data-dir", d)
        assert out.returncode == 0 and "1 session ended" in out.stdout, out.stderr
        assert not _opens(c)
    with _logged_in(server, workspace, email, NEW_PASSWORD) as c:
        out = _run("user", "delete", workspace.name, email, "--data-dir", d)
        assert out.returncode == 0 and "sessions ended" in out.stdout, out.stderr
        assert not _opens(c)
    out = _run("user", "delete", workspace.name, email, "--data-dir", d)
    assert out.returncode == 1 and f"no user '{email}'" in out.stderr


@pytest.mark.parametrize(
    ("locale", "heading", "changed"),
    [("ja-JP", "アカウント", "パスワードを変更しました"), ("en-US", "Account", "Password changed")],
)
def test_the_account_page_in_japanese_and_english_on_a_laptop_and_a_tablet(
    browser: Any, server: Server, workspace: Workspace, locale: str, heading: str, changed: str
) -> None:
    email = _user(server, workspace, "a.very.long.address.for.the.header@example-department-store.co.jp")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # a blocked script or style shows as a console error; a missing resource as a response
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "resource" not in m.text else None)
    page.on("response", lambda r: errors.append(r.url) if r.status >= 400 and "/static/" in r.url else None)
    page.goto(f"{server.url}/ui/login")
    page.fill("input[name=workspace]", workspace.name)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/ui/")
    for width in (1280, 820):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{server.url}/ui/")
        page.click("header a.account")  # the header links to the account page at both widths
        page.wait_for_url(f"{server.url}/ui/account")
        assert page.inner_text("main h1") == heading
        page.screenshot(path=f"/tmp/tsunagu-account-{locale[:2]}-{width}.png", full_page=True)
        session = page.locator(".account-page > section").bounding_box()
        form = page.locator(".password-form").bounding_box()
        assert session and form
        if width == 1280:  # side by side, apart
            assert session["x"] + session["width"] <= form["x"] and abs(session["y"] - form["y"]) < 1
        else:  # stacked
            assert form["y"] >= session["y"] + session["height"]
        for box in (session, form):
            assert box["x"] >= 0 and box["x"] + box["width"] <= width
        no_overlap(page, "header.top > *")
        no_overlap(page, ".password-form > label, .password-form > button, .password-form > p")
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing sticks out
    # a refusal names the reason on the page; another session offers to end it
    with _logged_in(server, workspace, email):
        page.reload()
        page.fill("input[name=current]", PASSWORD)
        page.fill("input[name=new]", NEW_PASSWORD)
        page.fill("input[name=again]", NEW_PASSWORD + "?")
        page.click(".password-form button[type=submit]")
        page.wait_for_selector(".password-form .error")
        assert page.locator(".end-sessions button").is_visible()
        page.screenshot(path=f"/tmp/tsunagu-account-{locale[:2]}-820-refused.png", full_page=True)
        no_overlap(page, ".password-form > *:not([type=hidden])")
    page.fill("input[name=current]", PASSWORD)
    page.fill("input[name=new]", NEW_PASSWORD)
    page.fill("input[name=again]", NEW_PASSWORD)
    page.click(".password-form button[type=submit]")
    page.wait_for_selector(".notice")
    page.screenshot(path=f"/tmp/tsunagu-account-{locale[:2]}-820-changed.png", full_page=True)
    assert changed in page.inner_text("main")
    assert not errors, errors
    context.close()
