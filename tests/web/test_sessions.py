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

from tsunagu.storage.control import ControlStore

from ..conftest import Server, Workspace

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


def _csrf(c: httpx.Client, path: str = "/ui/") -> str:
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
        assert r.status_code == 303
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
