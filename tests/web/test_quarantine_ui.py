"""What a workspace set aside is visible to its admins: a warning on the overview, a page
that lists each entry with its reason and reference, in Japanese and English."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tsunagu.storage.control import ControlStore
from tsunagu.storage.sqlite_quarantine import SqliteQuarantine

from ..conftest import Server, Workspace

PASSWORD = "correct horse battery"


def _set_aside(server: Server, ws: Workspace, person_id: str) -> None:
    """Entries as the pipeline writes them (nothing a client sends can make one now)."""
    q = SqliteQuarantine(server.data_dir / "workspaces" / ws.name / "quarantine.sqlite")
    body = json.dumps({"message_id": "m-1", "type": "track", "event": "buy", "properties": {"revenue": 5}}).encode()
    q.add("engine", "q-0a1b2c3d4e", reason="ZeroDivisionError('injected')", at=1_790_000_000_000,
          message_id="m-1", person_id=person_id, body=body)  # fmt: skip
    row = b'{"properties": "{\\"s\\": \\"\\ufffd\\"}"}'
    q.add("analytics", "q-5f6e7d8c9b", reason="events: Conversion Error: could not convert blob to UTF8 string",
          at=1_790_000_100_000, seq=7, message_id="m-" + "x" * 120, body=row)  # fmt: skip
    q.close()


def _login(page: Any, server: Server, ws: Workspace, email: str) -> None:
    page.goto(f"{server.url}/ui/login")
    page.fill("input[name=workspace]", ws.name)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/ui/")


@pytest.mark.parametrize(
    ("locale", "notice", "source"),
    [
        ("ja-JP", "取り込めなかったデータが 2 件あります", "エンジン"),
        ("en-US", "Set aside: 2. These could not be taken", "Engine"),
    ],
)
def test_set_aside_data_shows_on_the_overview_and_its_own_page(
    browser: Any, server: Server, workspace: Workspace, locale: str, notice: str, source: str
) -> None:
    email = f"admin-{locale}@example.jp"
    ControlStore(server.data_dir / "control.sqlite").create_user(workspace.name, email, PASSWORD)
    assert workspace.ingest("/v1/track", {"userId": "Q-1", "event": "view"}).status_code == 200
    pid = workspace.person("user_id", "Q-1")["person_id"]
    _set_aside(server, workspace, pid)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
    page = context.new_page()
    _login(page, server, workspace, email)
    assert notice in page.inner_text("p.warning")
    page.click("p.warning a")
    page.wait_for_url(f"{server.url}/ui/quarantine")
    text = page.inner_text("main")
    assert source in text and "q-0a1b2c3d4e" in text and "ZeroDivisionError" in text
    assert page.locator(f'a[href="/ui/people/{pid}"]').count() == 1
    page.click("details summary >> nth=1")  # newest first: the engine's entry is second
    assert '"revenue": 5' in page.inner_text("details pre >> nth=1")
    for width in (1280, 820, 360):
        page.set_viewport_size({"width": width, "height": 900})
        page.reload()
        page.screenshot(path=f"/tmp/tsunagu-quarantine-{locale[:2]}-{width}.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, width
    context.close()


def test_the_quarantine_page_needs_a_login_and_says_when_it_is_empty(server: Server, workspace: Workspace) -> None:
    r = httpx.get(f"{server.url}/ui/quarantine", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    email = "empty@example.jp"
    ControlStore(server.data_dir / "control.sqlite").create_user(workspace.name, email, PASSWORD)
    assert workspace.ingest("/v1/track", {"userId": "Q-2", "event": "view"}).status_code == 200
    with httpx.Client(base_url=server.url, headers={"Accept-Language": "en"}) as c:
        page = c.get("/ui/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        c.post("/ui/login", data={"csrf": token, "workspace": workspace.name, "email": email, "password": PASSWORD})
        assert "could not be taken" not in c.get("/ui/").text  # no warning when nothing was
        assert "Nothing was set aside" in c.get("/ui/quarantine").text
