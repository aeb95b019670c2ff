"""The live page says who and what; people search says how many and why; the login
knows the workspace when there is only one (issue 10)."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx

from tsunagu.storage.control import ControlStore

from ..conftest import Server, Workspace

PASSWORD = "correct horse battery"


@contextlib.contextmanager
def _client(server: Server, ws: Workspace, lang: str = "ja") -> Iterator[httpx.Client]:
    email = f"u-{uuid.uuid4().hex[:6]}@example.jp"
    ControlStore(server.data_dir / "control.sqlite").create_user(ws.name, email, PASSWORD)
    with httpx.Client(base_url=server.url, headers={"Accept-Language": lang}, timeout=30) as c:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/login").text).group(1)  # type: ignore[union-attr]
        r = c.post("/ui/login", data={"csrf": token, "workspace": ws.name, "email": email, "password": PASSWORD})
        assert r.status_code == 303, r.text
        yield c


def _rows(html: str) -> list[str]:
    body = html.split('<tbody id="live-rows">', 1)[1].split("</tbody>", 1)[0]
    return [re.sub(r"<[^>]+>", "|", row) for row in body.split("<tr")[1:]]


def test_the_live_page_names_the_person_and_what_each_event_was_about(server: Server, workspace: Workspace) -> None:
    ws = workspace
    user = f"L-{uuid.uuid4().hex[:6]}"
    events = [
        {"type": "identify", "userId": user, "traits": {"name": "森 さくら", "member_rank": "ゴールド"}},
        {"type": "track", "userId": user, "event": "view", "context": {"channel": "web"},
         "properties": {"sku": "A1", "product_name": "リネンシャツ", "price": 5990}},
        {"type": "page", "userId": user, "name": "リネンシャツ | YOHAKU", "context": {"channel": "web"}},
        {"type": "track", "userId": user, "event": "checkin", "context": {"channel": "store", "store_id": "S011"},
         "properties": {"store_name": "新宿店"}},
    ]  # fmt: skip
    assert ws.ingest("/v1/batch", {"batch": events}).status_code == 200
    with ws.client() as c:  # a segment that everyone with a view enters: its rows name the person too
        assert c.put("/api/v1/segments/viewers", json={"rule": {"did": "view"}, "description": "閲覧した人"}).is_success
    with _client(server, ws) as c:
        html = c.get("/ui/live").text
    rows = _rows(html)
    assert rows and not any("None" in r for r in rows), rows
    mine = [r for r in rows if "森 さくら" in r]
    assert any("商品閲覧" in r and "リネンシャツ" in r for r in mine), mine
    assert any("ページ閲覧" in r and "リネンシャツ | YOHAKU" in r for r in mine), mine
    assert any("来店" in r and "新宿店" in r for r in mine), mine
    assert any("セグメント参加" in r and "閲覧した人" in r for r in mine), mine
    assert "Asia/Tokyo" in html


def test_people_search_says_how_many_match_and_why_each_one_does(server: Server, workspace: Workspace) -> None:
    ws = workspace
    tag = uuid.uuid4().hex[:6]
    batch = [
        {"type": "identify", "userId": f"P-{tag}-1", "traits": {"name": "上田 一郎", "member_rank": f"プラチナ{tag}"}},
        {"type": "identify", "userId": f"P-{tag}-2", "traits": {"name": "上田 二郎", "member_rank": f"プラチナ{tag}"}},
        {"type": "identify", "userId": f"P-{tag}-3", "traits": {"name": "三宅", "email": f"{tag}@example.jp"}},
    ]  # fmt: skip
    assert ws.ingest("/v1/batch", {"batch": batch}).status_code == 200
    with _client(server, ws) as c:
        by_trait = c.get("/ui/people", params={"q": f"プラチナ{tag}"}).text
        by_member_id = c.get("/ui/people", params={"q": f"P-{tag}-3"}).text
    with _client(server, ws, "en") as c:
        english = c.get("/ui/people", params={"q": tag}).text
    assert f"「プラチナ{tag}」に一致: 2 人" in by_trait
    assert by_trait.count(f"会員ランク: プラチナ{tag}") == 2
    assert "一致: 1 人" in by_member_id and f"会員ID: P-{tag}-3" in by_member_id
    assert f"3 people match “{tag}”" in english  # the trait, the email and the member ids hold it


def test_the_login_page_fills_in_the_workspace_when_there_is_only_one(tmp_path: Any) -> None:
    from ..conftest import free_port

    server = Server(tmp_path, free_port())
    only = server.create_workspace("shop")
    server.start()
    try:
        page = httpx.get(f"{server.url}/ui/login", timeout=30).text
        assert 'name="workspace" required autocomplete="organization" value="shop"' in page
        server.create_workspace("outlet")  # two: nothing to guess
        page = httpx.get(f"{server.url}/ui/login", timeout=30).text
        assert 'value="shop"' not in page and 'value="outlet"' not in page
        linked = httpx.get(f"{server.url}/ui/login", params={"workspace": "outlet"}, timeout=30).text
        assert 'value="outlet"' in linked
        assert only.name == "shop"
    finally:
        server.stop()
