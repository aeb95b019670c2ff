"""The karte a store's staff and a marketer can read (issue 10): words in the UI's
language, store names everywhere, the timeline first on a tablet, nothing overlapping
from 360 px up — in Chromium, in Japanese and English."""

from __future__ import annotations

from typing import Any

import pytest

from tsunagu.storage.control import ControlStore

from ..conftest import Server, Workspace

PASSWORD = "correct horse battery"
DAY = "2026-11-20T"


def _member(ws: Workspace) -> str:
    coat = {"sku": "YH-OT001", "product_name": "ウールコート", "category": "アウター", "price": 29800}
    knit = {"sku": "YH-KN002", "product_name": "ケーブル編み カーディガン", "category": "ニット", "price": 7990}
    events = [
        {"type": "identify", "userId": "K-1", "timestamp": DAY + "09:00:00+09:00",
         "traits": {"name": "山田 花子", "member_rank": "ゴールド", "gender": "female", "favorite_store": "S011"}},
        {"type": "track", "userId": "K-1", "event": "view", "timestamp": DAY + "10:01:00+09:00", "properties": coat,
         "context": {"channel": "web"}},
        {"type": "track", "userId": "K-1", "event": "view", "timestamp": DAY + "10:03:00+09:00", "properties": coat,
         "context": {"channel": "web"}},
        {"type": "track", "userId": "K-1", "event": "view", "timestamp": DAY + "10:05:00+09:00", "properties": knit,
         "context": {"channel": "web"}},
        {"type": "track", "userId": "K-1", "event": "checkin", "timestamp": DAY + "15:00:00+09:00",
         "context": {"channel": "store", "store_id": "S011"}, "properties": {"store_name": "新宿店", "method": "app"}},
        {"type": "track", "userId": "K-1", "event": "buy", "timestamp": DAY + "15:20:00+09:00",
         "context": {"channel": "store", "store_id": "S011"},
         "properties": {"order_id": "S011-1", "revenue": 29800, "items": [{**coat, "quantity": 1}]}},
    ]  # fmt: skip
    assert ws.ingest("/v1/batch", {"batch": events}).status_code == 200
    with ws.client() as c:
        r = c.put("/api/v1/segments/big_spenders", json={"rule": {"computed": "ltv", "op": "gte", "value": 10000},
                                                         "description": "累計1万円以上の顧客"})  # fmt: skip
        assert r.status_code == 200, r.text
    return ws.person("user_id", "K-1")["person_id"]


def _boxes(page: Any, selector: str) -> list[dict[str, float]]:
    return [b for b in (e.bounding_box() for e in page.locator(selector).all() if e.is_visible()) if b]


def _apart(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] + a["width"] <= b["x"] + 0.5
        or b["x"] + b["width"] <= a["x"] + 0.5
        or a["y"] + a["height"] <= b["y"] + 0.5
        or b["y"] + b["height"] <= a["y"] + 0.5
    )


def _no_overlap_within(page: Any, parents: str, children: str) -> None:
    for parent in page.locator(parents).all()[:40]:
        boxes = [b for b in (c.bounding_box() for c in parent.locator(children).all()) if b]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert _apart(a, b), f"{parents} {children}: {a} overlaps {b}"


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        ("ja-JP", ["会員ランク", "女性", "新宿店", "累計購入金額", "買い物の傾向", "商品閲覧", "来店", "店舗で購入",
                   "累計1万円以上の顧客", "Asia/Tokyo"]),
        ("en-US", ["Member rank", "Female", "新宿店", "Lifetime spend", "How they shop", "Viewed", "Check-in",
                   "Store visit", "Buys in stores, browses online", "Asia/Tokyo"]),
    ],
)  # fmt: skip
def test_the_karte_reads_in_the_ui_language_with_store_names_at_every_width(
    browser: Any, server: Server, workspace: Workspace, locale: str, words: list[str]
) -> None:
    pid = _member(workspace)
    email = f"staff-{locale}@example.jp"
    ControlStore(server.data_dir / "control.sqlite").create_user(workspace.name, email, PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
    page = context.new_page()
    page.goto(f"{server.url}/ui/login")
    page.fill("input[name=workspace]", workspace.name)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/ui/")
    for width in (1280, 820, 360):
        page.set_viewport_size({"width": width, "height": 1180 if width == 820 else 900})
        page.goto(f"{server.url}/ui/people/{pid}")
        text = page.inner_text("main")
        for word in words:
            assert word in text, (width, word)
        # raw identifiers are not what the page says (the names stay in title attributes)
        for raw in ("member_rank", "favorite_store", "cross_channel_class", "days_since_last_purchase", "S011 "):
            assert raw not in text, (width, raw)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, width
        summary, timeline = page.locator(".summary").bounding_box(), page.locator(".timeline").bounding_box()
        side = page.locator(".side").bounding_box()
        assert summary and timeline and side
        assert summary["y"] + summary["height"] <= timeline["y"]
        if width < 1000:  # a tablet or a phone: the timeline right after the summary
            assert timeline["y"] + timeline["height"] <= side["y"]
            assert timeline["y"] < 900, "the timeline starts on the first screen"
        else:  # a laptop: the details beside the timeline
            assert side["x"] + side["width"] <= timeline["x"]
        _no_overlap_within(page, ".entry", "time, .what, .text, .amount")
        _no_overlap_within(page, ".visit header", ":scope > *")
        _no_overlap_within(page, ".summary .numbers", "li")
        page.screenshot(path=f"/tmp/tsunagu-karte-{locale[:2]}-{width}.png", full_page=width != 360)
    context.close()
