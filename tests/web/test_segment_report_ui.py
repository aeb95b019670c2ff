"""The segment report page in Chromium: the charts, the day table, overlap and members agree with the API."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..clocked import NAME, ClockedServer, jst, tell_story
from ..conftest import Workspace
from .layout import PASSWORD, login, no_overlap


@pytest.fixture(scope="module")
def clocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockedServer]:
    srv = ClockedServer(tmp_path_factory.mktemp("clocked-ui"), jst(2026, 3, 1, 9, 0)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def story(clocked: ClockedServer) -> Workspace:
    ws = tell_story(clocked)
    clocked.create_user(ws, "staff@example.jp", PASSWORD)
    return ws


def test_the_report_page_draws_the_numbers_the_api_gives(
    browser: Any, clocked: ClockedServer, story: Workspace, tmp_path: Path
) -> None:
    api = httpx.get(
        f"{clocked.url}/api/v1/segments/gold/report",
        params={"days": 7},
        headers={"Authorization": f"Bearer {story.api_token}"},
    ).json()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    page = context.new_page()
    login(page, clocked.url, story)
    page.goto(f"{clocked.url}/ui/segments/gold/report?days=7")
    assert page.inner_text("h1") == "gold"
    assert page.inner_text("[data-test=size]") == "3"
    assert page.inner_text("[data-test=entries]") == "+5" and page.inner_text("[data-test=exits]") == "−2"
    rows = page.locator("[data-test=days] tbody tr")
    assert rows.count() == 7
    shown = [[c.strip() for c in rows.nth(i).inner_text().split("\t")] for i in range(7)]
    shown = [[cells[0].split()[0], *cells[1:]] for cells in shown]  # the day, without its tag
    expected = [[d["day"], str(d["entries"] or ""), str(d["exits"] or ""), str(d["size"])] for d in api["days"]]
    assert shown == expected[::-1]  # newest first
    # the size chart: one point per day, the line ends higher than it starts
    assert page.locator("[data-test=days] tbody tr[data-source=reconstructed]").count() == 2  # 02-27, 02-28
    points = page.get_attribute("[data-test=size-chart] polyline", "points").split()
    assert len(points) == 7 and float(points[-1].split(",")[1]) < float(points[0].split(",")[1])
    # the flow chart: 3 days with entries (green up), 2 with exits (red down)
    assert page.locator("[data-test=flow-chart] rect.enter").count() == 3
    assert page.locator("[data-test=flow-chart] rect.exit").count() == 2
    box = page.locator("[data-test=size-chart]").bounding_box()
    assert box and box["width"] > 300 and box["height"] > 100

    # members, with the Japanese name that has a comma, quotes and a newline
    members = page.locator("[data-test=members] tbody tr")
    assert members.count() == 3
    assert "佐藤" in page.inner_text("[data-test=members]")

    # overlap with another segment
    page.select_option("select[name=with]", "buyers")
    page.click("form.filters button")
    page.wait_for_selector("[data-test=overlap]")
    assert page.inner_text("[data-test=only_a]") == "1"
    assert page.inner_text("[data-test=both]") == "2"
    assert page.inner_text("[data-test=only_b]") == "2"
    assert page.inner_text("[data-test=jaccard]") == "0.400"
    page.screenshot(path=str(tmp_path / "segment-report.png"), full_page=True)

    # the CSV comes through the session cookie (no API token in the page)
    with page.expect_download() as info:
        page.click("[data-test=csv]")
    data = Path(info.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[0][-1] == "name" and len(rows) == 4 and NAME in [r[-1] for r in rows]
    assert story.api_token not in page.content()
    context.close()


def test_the_report_page_needs_a_login_and_stays_in_its_workspace(clocked: ClockedServer, story: Workspace) -> None:
    for path in ("/ui/segments/gold/report", "/ui/segments/gold/members.csv"):
        r = httpx.get(clocked.url + path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    other = clocked.create_workspace()
    clocked.create_user(other, "staff@example.jp", PASSWORD)
    with httpx.Client(base_url=clocked.url) as c:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/login").text).group(1)  # type: ignore[union-attr]
        c.post("/ui/login", data={"csrf": token, "workspace": other.name, "email": "staff@example.jp",
                                  "password": PASSWORD})  # fmt: skip
        assert c.get("/ui/segments/gold/report").status_code == 404  # the story's segment is not theirs
        assert c.get("/ui/segments/gold/members.csv").status_code == 404


def test_reconstructed_days_are_marked_and_the_axes_are_honest(
    browser: Any, clocked: ClockedServer, tmp_path: Path
) -> None:
    from ..api.test_report_history import RULE, _buys, _send

    ws = clocked.create_workspace()
    clocked.create_user(ws, "staff@example.jp", PASSWORD)
    saved = clocked.now
    clocked.now = jst(2026, 3, 1, 10, 0)
    try:
        _send(ws, _buys())
        clocked.define_segment(ws, "recent", RULE)

        async def wait() -> None:
            await (await clocked.platform.pipeline(ws.name)).histories.wait()

        clocked.run(wait())
        api = httpx.get(f"{clocked.url}/api/v1/segments/recent/report", params={"days": 30},
                        headers={"Authorization": f"Bearer {ws.api_token}"}).json()  # fmt: skip
        recon = [d for d in api["days"] if d["source"] == "reconstructed"]
        assert len(recon) == 29
        for locale, width in (("ja-JP", 1280), ("ja-JP", 820), ("en-US", 1280), ("en-US", 820)):
            context = browser.new_context(viewport={"width": width, "height": 1000}, locale=locale)
            page = context.new_page()
            login(page, clocked.url, ws)
            page.goto(f"{clocked.url}/ui/segments/recent/report?days=30")
            word = "再構成" if locale == "ja-JP" else "Reconstructed"
            assert page.locator("[data-test=days] tr[data-source=reconstructed] .tag").count() == 29
            assert page.locator("[data-test=days] tr[data-source=reconstructed] .tag").first.inner_text() == word
            assert "2026-03-01" in page.inner_text("[data-test=history-note]")
            assert page.locator("[data-test=recon-band]").count() == 1
            # the size axis starts at 0 and its top is at or above the largest size
            size_axis = page.locator("[data-test=size-chart]").locator("xpath=..").locator(".yaxis span").all()
            top = int(size_axis[0].inner_text().replace(",", ""))
            assert size_axis[-1].inner_text() == "0" and top >= max(d["size"] for d in api["days"])
            flow_axis = [
                e.inner_text()
                for e in page.locator("[data-test=flow-chart]").locator("xpath=..").locator(".yaxis span").all()
            ]
            assert flow_axis[0].startswith("+") and flow_axis[1] == "0" and flow_axis[-1].startswith("−")
            # day labels under both charts: the first day and the last
            axis = page.locator("[data-test=size-chart]").locator("xpath=../..").locator(".axis span").all()
            assert axis[0].inner_text() == api["days"][0]["day"] and axis[-1].inner_text() == "03-01"
            for sel in (".stats .stat", "[data-test=days] thead th", ".report-head > *", ".yaxis span", ".axis span"):
                no_overlap(page, sel)
            page.screenshot(path=str(tmp_path / f"history-{locale[:2]}-{width}.png"), full_page=True)
            context.close()
    finally:
        clocked.now = saved


def test_with_no_exits_the_flow_axis_has_no_minus(browser: Any, clocked: ClockedServer, story: Workspace) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    login(page, clocked.url, story)
    page.goto(f"{clocked.url}/ui/segments/buyers/report?days=7")  # buyers: nobody leaves
    flow_axis = [
        e.inner_text() for e in page.locator("[data-test=flow-chart]").locator("xpath=..").locator(".yaxis span").all()
    ]
    assert flow_axis[-1] == "0" and not any(a.startswith("−") for a in flow_axis)
    assert page.inner_text("[data-test=exits]") == "−0"
    context.close()


def test_days_not_yet_reconstructed_show_as_pending(browser: Any, clocked: ClockedServer) -> None:
    from ..api.test_report_history import RULE, _buys, _send

    ws = clocked.create_workspace()
    clocked.create_user(ws, "staff@example.jp", PASSWORD)
    saved = clocked.now
    clocked.now = jst(2026, 3, 1, 10, 0)
    try:
        _send(ws, _buys())

        async def hold() -> None:  # no reconstruction yet: the page must say so, not draw zeros
            pipe = await clocked.platform.pipeline(ws.name)
            await pipe.histories.wait()
            pipe.histories.check = lambda: None  # type: ignore[method-assign]

        clocked.run(hold())
        clocked.define_segment(ws, "recent", RULE)
        for locale, word in (("ja-JP", "再構成を待っています"), ("en-US", "queued for reconstruction")):
            context = browser.new_context(viewport={"width": 820, "height": 1000}, locale=locale)
            page = context.new_page()
            login(page, clocked.url, ws)
            page.goto(f"{clocked.url}/ui/segments/recent/report?days=7")
            assert word in page.inner_text("[data-test=history-queued]")
            pending = page.locator("[data-test=days] tbody tr[data-source=pending]")
            assert pending.count() == 7  # the definition day too: its entries need the day before
            assert pending.last.inner_text().split("\t")[1:] == ["…", "…", "…"]
            assert pending.first.inner_text().split("\t")[1:3] == ["…", "…"]  # today's size is known
            assert page.inner_text("[data-test=entries]") == "+0"  # nothing counted as entering
            context.close()

        async def release() -> None:
            pipe = await clocked.platform.pipeline(ws.name)
            del pipe.histories.check
            await pipe.histories.wait()

        clocked.run(release())
    finally:
        clocked.now = saved
