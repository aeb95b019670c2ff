"""The segment builder in Chromium: the live count is the API's, a saved segment lists the same
members, and the karte shows a person's segments, computed traits and user data."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tsunagu.storage.control import ControlStore

from ..conftest import Server, Workspace

PASSWORD = "correct horse battery"


def _shop(ws: Workspace) -> None:
    """Ten members: even ones buy in the store, every third is gold, some browse coats online."""
    batch: list[dict[str, Any]] = []
    for i in range(10):
        uid = f"B-{i}"
        rank = "ゴールド" if i % 3 == 0 else "レギュラー"
        batch.append({"type": "identify", "userId": uid, "traits": {"name": f"会員 {i}", "member_rank": rank}})
        channel = "store" if i % 2 == 0 else "web"
        items = [{"sku": "YH-OT001", "category": "アウター", "price": 12000}]
        batch.append({"type": "track", "userId": uid, "event": "buy", "context": {"channel": channel},
                      "properties": {"revenue": 12000 + 1000 * i, "items": items}})  # fmt: skip
        if i % 4 == 0:
            batch.append({"type": "track", "userId": uid, "event": "view", "context": {"channel": "web"},
                          "properties": {"sku": "YH-OT001", "category": "アウター", "price": 29800}})  # fmt: skip
    assert ws.ingest("/v1/batch", {"batch": batch}).status_code == 200


def _wait_for_count(page: Any) -> tuple[int, dict[str, Any]]:
    """The count shown once it is the count of the rule now in the JSON view."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rule = json.loads(page.input_value("#rule-json"))
        counted = page.get_attribute("#live-count", "data-rule")
        stale = "stale" in (page.get_attribute("#live-count", "class") or "")
        if counted and json.loads(counted) == rule and not stale:
            return int(page.get_attribute("#live-count", "data-count")), rule
        time.sleep(0.05)
    raise AssertionError("the live count never caught up with the rule")


def test_build_count_save_and_see_it_listed_and_on_the_karte(browser, server: Server) -> None:
    ws = server.create_workspace()
    _shop(ws)
    ControlStore(server.data_dir / "control.sqlite").create_user(ws.name, "staff@example.jp", PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server.url}/ui/login")
    page.fill("input[name=workspace]", ws.name)
    page.fill("input[name=email]", "staff@example.jp")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")

    page.goto(f"{server.url}/ui/segments")
    page.click("[data-test=new-segment]")
    page.wait_for_selector("#rule-tree .cond")
    everyone, _ = _wait_for_count(page)
    assert everyone == 10  # the starting rule: bought in the last 90 days

    # bought in a store ...
    page.select_option(".cond[data-kind=did] select[data-field=channel]", "store")
    # ... and is a gold member
    page.select_option("select[data-field=add-type]", "trait")
    page.click("button[data-action=add-condition]")
    trait = page.locator(".cond[data-kind=trait]")
    trait.locator("input[data-field=trait]").fill("member_rank")
    trait.locator("input[data-field=value]").fill("ゴールド")
    shown, rule = _wait_for_count(page)
    assert rule == {"all": [{"did": "buy", "within_days": 90, "channel": "store"},
                            {"trait": "member_rank", "op": "eq", "value": "ゴールド"}]}  # fmt: skip
    with ws.client() as c:
        api = c.post("/api/v1/segments/preview", json={"rule": rule}).json()
    assert shown == api["count"] == 2  # B-0 and B-6
    assert {a.inner_text() for a in page.locator("#sample a").all()} == {"会員 0", "会員 6"}

    # an invalid rule shows its exact path instead of a count
    page.click("#json-view summary")
    page.fill("#rule-json", json.dumps({"all": [{"did": "buy", "within_days": 0}]}))
    page.wait_for_selector("#rule-errors li")
    assert "rule.all[0].within_days" in page.inner_text("#rule-errors")
    page.fill("#rule-json", json.dumps(rule))
    assert _wait_for_count(page)[0] == 2

    page.fill("#seg-name", "gold_store_buyers")
    page.fill("#seg-description", "店舗で買ったゴールド会員")
    page.click("#save")
    page.wait_for_url("**/ui/segments?saved=gold_store_buyers")
    row = page.locator("tr[data-segment=gold_store_buyers]")
    deadline = time.monotonic() + 20
    while row.locator("[data-test=status]").inner_text() != "稼働中" and time.monotonic() < deadline:
        time.sleep(0.2)
        page.reload()
    assert row.locator("[data-test=members]").inner_text() == "2"
    assert "店舗で買ったゴールド会員" in row.inner_text()
    with ws.client() as c:
        assert c.get("/api/v1/segments/gold_store_buyers").json()["body"]["rule"] == rule

    member = ws.person("user_id", "B-0")
    page.goto(f"{server.url}/ui/people/{member['person_id']}")
    segments = page.locator("[data-test=karte-segments]")
    assert "店舗で買ったゴールド会員" in segments.inner_text()  # its description, in the UI's words
    assert segments.locator('a[href="/ui/segments/gold_store_buyers/report"]').count() == 1
    assert page.locator("[data-test=karte-computed] [data-name=ltv]").count() == 1
    # a long trait name wraps; its value keeps room for a yen amount on one line
    widths = page.locator("[data-test=karte-computed] dd").evaluate_all("els => els.map(e => e.clientWidth)")
    assert widths and min(widths) >= 100, widths
    data = page.locator("[data-test=karte-data]")
    data.locator("summary").click()  # every field, folded under what a seller asks first
    assert data.locator("tr[data-field='buy.revenue']").count() == 1
    assert "アウター" in data.locator("tr[data-field='view.category']").inner_text()

    # the UI's endpoints want the session's CSRF token, not just the cookie
    r = page.request.post(f"{server.url}/ui/segments/preview", data={"rule": rule})
    assert r.status == 403
    assert not errors, errors
    context.close()


def test_the_segments_pages_need_a_login(server: Server) -> None:
    for path in ("/ui/segments", "/ui/segments/new", "/ui/segments/x/edit"):
        r = httpx.get(server.url + path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    # the builder's JSON endpoint: a 401 its script can read (it goes to the login), not a redirect
    r = httpx.post(server.url + "/ui/segments/preview", json={"rule": {"did": "buy"}}, follow_redirects=False)
    assert r.status_code == 401 and r.json()["error"]["errors"][0]["field"] == "tsg_session"
