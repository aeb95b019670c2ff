"""`GET /api/v1/overview` over real HTTP: Tokyo days, the shares, the classes, the errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ..clocked import ClockedServer, jst, tell_overview_story
from ..conftest import Workspace


@pytest.fixture(scope="module")
def clocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockedServer]:
    srv = ClockedServer(tmp_path_factory.mktemp("clocked-overview"), jst(2026, 11, 20, 12, 0)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def story(clocked: ClockedServer) -> Workspace:
    return tell_overview_story(clocked)


def _get(ws: Workspace, **params: Any) -> httpx.Response:
    with ws.client() as c:
        return c.get("/api/v1/overview", params=params)


def test_the_overview_counts_sales_per_tokyo_day_by_channel(story: Workspace) -> None:
    r = _get(story, days=7)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["timezone"], body["first_day"], body["last_day"], body["days"]) == (
        "Asia/Tokyo", "2026-11-14", "2026-11-20", 7,
    )  # fmt: skip
    days = {d["day"]: d for d in body["daily"]}
    assert list(days) == [f"2026-11-{n}" for n in range(14, 21)]
    # 23:30 on the 19th and 00:30 on the 20th: two Tokyo days, one UTC day
    assert days["2026-11-19"]["web"] == {"revenue": 1000, "orders": 1, "buyers": 1}
    assert days["2026-11-19"]["store"] == {"revenue": 0, "orders": 0, "buyers": 0}
    assert days["2026-11-20"]["store"] == {"revenue": 2000, "orders": 1, "buyers": 1}
    assert days["2026-11-18"]["store"]["revenue"] == 29800 and days["2026-11-17"]["app"]["revenue"] == 4500
    assert body["totals"]["store"] == {"revenue": 31800, "orders": 2, "buyers": 2}
    assert body["all_channels"] == {"revenue": 37300, "orders": 4, "buyers": 3}


def test_the_overview_has_shares_classes_and_products(story: Workspace) -> None:
    body = _get(story).json()
    assert body["days"] == 30 and len(body["daily"]) == 30  # the default range
    assert body["shares"] == {
        "store_buyers": 2, "store_buyers_online_same_month": 2, "store_online_share": 1.0,
        "online_buyers": 2, "online_buyers_also_in_store": 1, "online_store_share": 0.5,
    }  # fmt: skip
    classes = {c["class"]: (c["people"], c["avg_ltv"]) for c in body["classes"]}
    assert classes == {
        "omnichannel buyer": (1, 3000),
        "store buyer who browses the web": (1, 29800),
        "web only": (1, 4500),
        "browser, no purchase": (1, 0),
    }
    assert [(p["product"], p["views"], p["people"]) for p in body["viewed_online"]] == [
        ("YH-KN002", 2, 2), ("YH-OT001", 2, 2),
    ]  # fmt: skip
    assert body["bought_in_store"][0] == {
        "product": "YH-OT001", "name": "ウールコート", "units": 2, "receipts": 1, "revenue": 29800,
    }  # fmt: skip


@pytest.mark.parametrize("days", ["0", "abc", "367", "-3"])
def test_a_bad_range_is_the_one_error_shape(story: Workspace, days: str) -> None:
    r = _get(story, days=days)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["status"] == 400 and error["code"] == "invalid_input"
    assert error["errors"][0]["field"] == "days" and error["message"]


def test_the_overview_needs_the_api_token(story: Workspace) -> None:
    r = httpx.get(story.url + "/api/v1/overview")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = httpx.get(story.url + "/api/v1/overview", headers={"Authorization": f"Bearer {story.write_key}"})
    assert r.status_code == 401


def test_another_workspace_sees_only_its_own_sales(clocked: ClockedServer, story: Workspace) -> None:
    other = clocked.create_workspace()
    body = _get(other, days=1).json()
    assert body["daily"] == [{"day": "2026-11-20", **{ch: {"revenue": 0, "orders": 0, "buyers": 0}
                                                       for ch in ("web", "app", "store")}}]  # fmt: skip
    assert body["all_channels"]["orders"] == 0 and body["classes"] == []
