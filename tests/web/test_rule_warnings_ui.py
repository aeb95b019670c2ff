"""The builder says when a rule names what the workspace never saw: the warning sits on the
condition it concerns, in Japanese and English, and a click on a suggestion uses it. The
event box offers the events seen, page views included, with counts (issue 10)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tsunagu.storage.control import ControlStore

from ..conftest import Server, Workspace
from .test_segment_builder import _wait_for_count

PASSWORD = "correct horse battery"


def _shop(ws: Workspace) -> None:
    """Six people: everyone views pages (the biggest event), some view coats, some buy in a store."""
    batch: list[dict[str, Any]] = []
    for i in range(6):
        uid = f"R-{i}"
        batch.append({"type": "identify", "userId": uid, "traits": {"name": f"会員 {i}"}})
        batch += [{"type": "page", "userId": uid, "name": "Top", "properties": {"path": "/"}}] * 3
        batch.append({"type": "track", "userId": uid, "event": "view", "context": {"channel": "web"},
                      "properties": {"sku": f"YH-{i}", "category": "アウター"}})  # fmt: skip
        if i % 2 == 0:
            batch.append({"type": "track", "userId": uid, "event": "buy", "context": {"channel": "store"}})
    assert ws.ingest("/v1/batch", {"batch": batch}).status_code == 200


def _warnings(page: Any, path: str) -> Any:
    return page.locator(f'#rule-tree [data-path="{path}"] > ul.warnings li')


def _wait_for_warning(page: Any, path: str) -> Any:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = page.locator(f'#rule-tree li.rule-warning[data-path="{path}"]')
        if found.count():
            return found
        time.sleep(0.05)
    raise AssertionError(f"no warning for {path}")


def _apart(page: Any, a: str, b: str) -> bool:
    """Does `a` sit wholly below `b` (no text over text)?"""
    box_a, box_b = page.locator(a).bounding_box(), page.locator(b).bounding_box()
    return box_a["y"] >= box_b["y"] + box_b["height"] - 0.5


@pytest.mark.parametrize(
    ("locale", "said", "suggest", "property_said"),
    [
        ("ja-JP", "イベント「page」はこのワークスペースで記録されていません", "候補:",
         "「view」イベントにプロパティ「categry」は見当たりません"),
        ("en-US", "No “page” event has been seen in this workspace", "Did you mean:",
         "No “view” event has a property “categry”"),
    ],
)  # fmt: skip
def test_the_builder_shows_a_warning_on_its_condition_and_a_click_uses_the_suggestion(
    browser: Any, server: Server, workspace: Workspace, locale: str, said: str, suggest: str, property_said: str
) -> None:
    _shop(workspace)
    email = f"marketer-{locale}@example.jp"
    ControlStore(server.data_dir / "control.sqlite").create_user(workspace.name, email, PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server.url}/ui/login")
    page.fill("input[name=workspace]", workspace.name)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/ui/")
    page.goto(f"{server.url}/ui/segments/new")
    page.wait_for_selector("#rule-tree .cond")

    # the event box offers what the workspace has seen, the most frequent first, with counts
    options = page.locator("#dl-events option")
    assert options.nth(0).get_attribute("value") == "$page"
    assert "18" in (options.nth(0).get_attribute("label") or "")  # six people, three page views each
    assert [options.nth(i).get_attribute("value") for i in range(options.count())] == ["$page", "view", "buy"]

    rule = {"all": [{"did": "page", "within_days": 30}, {"did": "view", "where": {"categry": "アウター"}}]}
    page.click("#json-view summary")
    page.fill("#rule-json", json.dumps(rule, ensure_ascii=False))
    assert _wait_for_count(page)[0] == 0
    warning = _wait_for_warning(page, "rule.all[0].did")
    assert said in warning.inner_text() and suggest in warning.inner_text()
    assert property_said in _wait_for_warning(page, "rule.all[1].where.categry").inner_text()
    for width in (1280, 820):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=f"/tmp/tsunagu-rule-warnings-{locale[:2]}-{width}.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, width
        for i in (0, 1):  # the warning sits under its condition's fields, never over them
            at = f'#rule-tree [data-path="rule.all[{i}]"]'
            assert _apart(page, f"{at} > ul.warnings", f"{at} > .fields"), (width, i)
    page.set_viewport_size({"width": 1280, "height": 900})

    # a click on the suggestion uses it: page views are $page
    _warnings(page, "rule.all[0]").locator("button[data-suggestion='$page']").click()
    shown, rule = _wait_for_count(page)
    assert rule["all"][0] == {"did": "$page", "within_days": 30}
    assert page.input_value('#rule-tree [data-path="rule.all[0]"] input[data-field=did]') == "$page"
    _warnings(page, "rule.all[1]").locator("button[data-suggestion='category']").click()
    shown, rule = _wait_for_count(page)
    assert rule["all"][1] == {"did": "view", "where": {"category": "アウター"}}
    assert shown == 6
    deadline = time.monotonic() + 5
    while page.locator("#rule-tree ul.warnings").count() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert page.locator("#rule-tree ul.warnings").count() == 0
    page.screenshot(path=f"/tmp/tsunagu-rule-warnings-{locale[:2]}-fixed.png", full_page=True)
    assert not errors, errors
    context.close()
