"""The admin UI: login guards every page, workspaces stay apart, the karte shows one person."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tsunagu.storage.control import ControlStore

from ..conftest import Server, Workspace

PASSWORD = "correct horse battery"


def _user(server: Server, ws: Workspace, email: str = "staff@example.jp") -> str:
    ControlStore(server.data_dir / "control.sqlite").create_user(ws.name, email, PASSWORD)
    return email


def _login(client: httpx.Client, ws: Workspace, email: str, password: str = PASSWORD) -> httpx.Response:
    page = client.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, page.text
    return client.post(
        "/ui/login", data={"csrf": token.group(1), "workspace": ws.name, "email": email, "password": password}
    )


@pytest.mark.parametrize("path", ["/ui/", "/ui/people", "/ui/people/p_anything", "/ui/live", "/ui/live?fragment=1"])
def test_every_page_sends_a_stranger_to_the_login(server: Server, path: str) -> None:
    r = httpx.get(server.url + path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"


def test_a_forged_session_cookie_opens_nothing(server: Server) -> None:
    r = httpx.get(server.url + "/ui/", cookies={"tsg_session": "eyJ3cyI6ImRlbW8ifQ.forged.sig"}, follow_redirects=False)
    assert r.status_code == 303


def test_login_refuses_a_wrong_password_and_a_missing_csrf_token(server: Server, workspace: Workspace) -> None:
    email = _user(server, workspace)
    with httpx.Client(base_url=server.url) as c:
        r = _login(c, workspace, email, "wrong password")
        assert r.status_code == 400 and "tsg_session" not in r.cookies
    with httpx.Client(base_url=server.url) as c:
        r = c.post("/ui/login", data={"workspace": workspace.name, "email": email, "password": PASSWORD})
        assert r.status_code == 400 and "tsg_session" not in r.cookies


def test_login_then_logout(server: Server, workspace: Workspace) -> None:
    email = _user(server, workspace)
    with httpx.Client(base_url=server.url) as c:
        r = _login(c, workspace, email)
        assert r.status_code == 303 and r.headers["location"] == "/ui/"
        home = c.get("/ui/")
        assert home.status_code == 200 and email in home.text
        csrf = re.search(r'action="/ui/logout".*?name="csrf" value="([^"]+)"', home.text, re.S).group(1)
        assert c.post("/ui/logout", data={"csrf": "wrong"}).status_code == 403
        assert c.post("/ui/logout", data={"csrf": csrf}).status_code == 303
        assert c.get("/ui/", follow_redirects=False).status_code == 303


def test_a_user_of_one_workspace_cannot_open_a_person_of_another_by_url(server: Server) -> None:
    a, b = server.create_workspace(), server.create_workspace()
    assert b.ingest("/v1/track", {"userId": "B-1", "event": "view"}).status_code == 200
    b_person = b.person("user_id", "B-1")["person_id"]
    email = _user(server, a)
    with httpx.Client(base_url=server.url) as c:
        _login(c, a, email)
        r = c.get(f"/ui/people/{b_person}")
        assert r.status_code == 404 and "B-1" not in r.text
        found = c.get("/ui/people", params={"q": "B-1"}).text
        assert b_person not in found and 'table class="list"' not in found
        assert "B-1" not in c.get("/ui/live").text


def test_the_ui_speaks_the_browsers_language_with_a_switch(server: Server, workspace: Workspace) -> None:
    email = _user(server, workspace)
    with httpx.Client(base_url=server.url, headers={"Accept-Language": "en-US,en;q=0.9"}) as c:
        _login(c, workspace, email)
        assert "Overview" in c.get("/ui/").text
        c.get("/ui/lang", params={"to": "ja", "next": "/ui/"})
        assert "概要" in c.get("/ui/").text
        assert (
            c.get("/ui/lang", params={"to": "en", "next": "https://evil.example/"}, follow_redirects=False).headers[
                "location"
            ]
            == "/ui/"
        )


def test_the_karte_shows_web_and_store_visits_and_where_the_anonymous_part_joined(
    browser, server: Server, workspace: Workspace, tmp_path: Path
) -> None:
    day = "2026-11-20T"
    coat = {"sku": "YH-OT001", "product_name": "ウールコート", "price": 29800}
    events = [
        {"type": "page", "anonymousId": "anon-1", "name": "ウールコート", "timestamp": day + "10:00:00+09:00",
         "properties": {"path": "/products/YH-OT001"}, "context": {"channel": "web"}},
        {"type": "track", "anonymousId": "anon-1", "event": "view", "timestamp": day + "10:01:00+09:00",
         "properties": coat, "context": {"channel": "web"}},
        {"type": "track", "anonymousId": "anon-1", "event": "favorite", "timestamp": day + "10:02:00+09:00",
         "properties": coat, "context": {"channel": "web"}},
        {"type": "track", "userId": "M-7", "event": "checkin", "timestamp": day + "15:00:00+09:00",
         "context": {"channel": "store", "store_id": "S001"}, "properties": {"store_name": "渋谷店"}},
        {"type": "track", "userId": "M-7", "event": "buy", "timestamp": day + "15:20:00+09:00",
         "context": {"channel": "store", "store_id": "S001"},
         "properties": {"order_id": "S001-1", "revenue": 29800,
                        "items": [{"sku": "YH-OT001", "product_name": "ウールコート", "price": 29800, "quantity": 1}]}},
        {"type": "identify", "anonymousId": "anon-1", "userId": "M-7", "timestamp": day + "21:00:00+09:00",
         "traits": {"name": "鈴木 花子", "email": "hanako@example.jp"}, "context": {"channel": "web"}},
    ]  # fmt: skip
    assert workspace.ingest("/v1/batch", {"batch": events}).status_code == 200
    person = workspace.person("user_id", "M-7")
    email = _user(server, workspace)

    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    page = context.new_page()
    page.goto(f"{server.url}/ui/people/{person['person_id']}")
    page.fill("input[name=workspace]", workspace.name)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{server.url}/ui/people/{person['person_id']}")
    page.wait_for_selector(".visit")
    assert page.inner_text("h1") == "鈴木 花子"
    visits = page.locator(".visit")
    assert visits.count() == 3  # newest first: the login, the store visit, the web visit
    store = visits.nth(1)
    assert "渋谷店" in store.inner_text() and "¥29,800" in store.inner_text()  # the store's name, not S001
    assert [e.get_attribute("data-event") for e in store.locator(".entry").all()] == ["buy", "checkin"]
    web = visits.nth(2)
    assert [e.get_attribute("data-event") for e in web.locator(".entry").all()] == ["favorite", "view", ""]
    assert page.locator(".entry.system.merge").count() == 1  # where the anonymous part joined
    shot = tmp_path / "karte.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one

    page.select_option("select[name=channel]", "store")
    page.click(".filters button")
    page.wait_for_selector(".visit")
    assert page.locator(".visit").count() == 1

    # on a store tablet: the summary, then the timeline, then the details
    page.set_viewport_size({"width": 768, "height": 1024})
    page.goto(f"{server.url}/ui/people/{person['person_id']}")
    summary, timeline = page.locator(".summary").bounding_box(), page.locator(".timeline").bounding_box()
    side = page.locator(".side").bounding_box()
    assert summary and timeline and side
    assert summary["y"] + summary["height"] <= timeline["y"] and timeline["y"] + timeline["height"] <= side["y"]
    page.set_viewport_size({"width": 1280, "height": 900})

    page.goto(f"{server.url}/ui/")
    assert page.locator(".stat .value").first.inner_text() != ""
    assert page.locator("[data-test=totals] tbody tr").count() == 4  # web, app, store and all channels
    overview = tmp_path / "overview.png"
    page.screenshot(path=str(overview), full_page=True)
    assert overview.stat().st_size > 10_000
    page.goto(f"{server.url}/ui/people?q=hanako@example.jp")
    page.click("table.list a")
    assert page.url.endswith(person["person_id"])
    page.goto(f"{server.url}/ui/live")
    assert page.locator("#live-rows tr").count() >= 6
    context.close()
