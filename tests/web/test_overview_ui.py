"""The overview page in Chromium: sales per Tokyo day by channel, the shares, the classes and
the products, with the API's numbers, in Japanese and English, nothing overlapping at 1280 and 820 px."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..clocked import ClockedServer, jst, tell_overview_story
from ..conftest import Workspace
from .layout import PASSWORD, login

# every rendered text run in <main>, as (text, rects); pairs of runs whose boxes intersect
_OVERLAPS = """() => {
  const runs = [];
  const walker = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.textContent.trim() || node.parentElement.closest('svg')) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const rects = [...range.getClientRects()].filter(r => r.width > 0 && r.height > 0);
    if (rects.length) runs.push({text: node.textContent.trim(), rects});
  }
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const out = [];
  for (let i = 0; i < runs.length; i++)
    for (let j = i + 1; j < runs.length; j++)
      if (runs[i].rects.some(a => runs[j].rects.some(b => hit(a, b)))) out.push([runs[i].text, runs[j].text]);
  return out;
}"""


@pytest.fixture(scope="module")
def clocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockedServer]:
    srv = ClockedServer(tmp_path_factory.mktemp("clocked-overview-ui"), jst(2026, 11, 20, 12, 0)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def story(clocked: ClockedServer) -> Workspace:
    ws = tell_overview_story(clocked)
    clocked.create_user(ws, "staff@example.jp", PASSWORD)
    return ws


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        ("ja-JP", ["日別売上（チャネル別）", "店舗", "アプリ", "店舗でもオンラインでも購入", "閲覧のみ（購入なし）",
                   "店舗でよく買われた商品", "ウールコート", "直近30日"]),
        ("en-US", ["Revenue per day by channel", "Store", "App", "Buys in stores and online",
                   "Browses, has not bought", "Most bought in stores", "ウールコート", "Last 30 days"]),
    ],
)  # fmt: skip
def test_the_overview_shows_the_apis_numbers_in_both_languages_at_both_widths(
    browser: Any, clocked: ClockedServer, story: Workspace, tmp_path: Path, locale: str, words: list[str]
) -> None:
    api = httpx.get(
        f"{clocked.url}/api/v1/overview", params={"days": 7}, headers={"Authorization": f"Bearer {story.api_token}"}
    ).json()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
    page = context.new_page()
    login(page, clocked.url, story)
    text = page.inner_text("main")
    for word in words:
        assert word in text, word
    assert "2026-10-22 – 2026-11-20" in page.inner_text("[data-test=range]")  # 30 days by default

    page.click(".ov-range a:nth-child(1)")  # 7 days
    page.wait_for_url("**/ui/?days=7")
    assert "2026-11-14 – 2026-11-20 · Asia/Tokyo" in page.inner_text("[data-test=range]")
    assert page.inner_text("[data-test=revenue-total]") == "¥37,300"
    assert page.inner_text("[data-test=buyers-total]") == str(api["all_channels"]["buyers"])
    rows = page.locator("[data-test=totals] tbody tr")
    for i, ch in enumerate(("web", "app", "store")):
        cells = [c.strip() for c in rows.nth(i).inner_text().split("\t")]
        want = api["totals"][ch]
        assert cells[1:] == [f"¥{want['revenue']:,.0f}", str(want["orders"]), str(want["buyers"])], ch
    # the revenue chart: one bar per day and channel with sales, the y axis from ¥0 to a round top
    assert page.locator("[data-test=revenue-chart] rect").count() == 4
    assert page.inner_text("[data-test=revenue-chart-top]") == "¥50,000"
    assert page.locator("[data-test=buyers-chart] rect").count() == 4
    assert page.inner_text("[data-test=buyers-chart-top]") == "1"
    assert page.locator("[data-test=sales] .ov-x span").count() == 7  # a label a day for a week
    title = page.locator("[data-test=revenue-chart] rect.ch-store").first.locator("title").text_content()
    assert title.startswith("2026-11-18") and "¥29,800" in title
    assert page.inner_text("[data-test=store-online]").split("\t")[1:] == ["2 / 2", "100.0%"]
    assert page.inner_text("[data-test=online-store]").split("\t")[1:] == ["1 / 2", "50.0%"]
    assert page.locator("[data-test=classes] tbody tr").count() == 4
    assert page.locator("[data-test=viewed] tbody tr").count() == 2
    assert "¥29,800" in page.inner_text("[data-test=bought]")

    for width in (1280, 820):
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(100)
        assert page.evaluate(_OVERLAPS) == [], f"{locale} at {width} px"
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{locale} at {width} px scrolls"
        box = page.locator("[data-test=revenue-chart]").bounding_box()
        assert box and box["width"] > 300 and box["height"] >= 150
    page.goto(f"{clocked.url}/ui/?days=90")
    assert page.locator("[data-test=sales] .ov-x span").count() <= 7
    assert page.evaluate(_OVERLAPS) == []
    page.screenshot(path=str(tmp_path / f"overview-{locale}.png"), full_page=True)
    context.close()


def test_a_strange_range_falls_back_to_30_days(browser: Any, clocked: ClockedServer, story: Workspace) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    login(page, clocked.url, story)
    for days in ("abc", "0", "1000"):
        page.goto(f"{clocked.url}/ui/?days={days}")
        assert page.inner_text(".ov-range a.on") == "Last 30 days"
    context.close()


def test_the_overview_needs_alogin(clocked: ClockedServer) -> None:
    r = httpx.get(clocked.url + "/ui/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
