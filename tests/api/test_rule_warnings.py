"""A rule that cannot match says so: every endpoint that takes a rule answers `warnings`
naming what the workspace never saw and the nearest names it has (issue 10)."""

from __future__ import annotations

import time
from typing import Any

import pytest


@pytest.fixture(scope="module")
def shop(make_workspace: Any) -> Any:
    """Page views (the most frequent event), views, buys online and at S001, check-ins, ranks."""
    ws = make_workspace()
    batch: list[dict[str, Any]] = []
    for i in range(8):
        uid = f"W-{i}"
        batch.append({"type": "identify", "userId": uid, "traits": {"member_rank": ["ゴールド", "レギュラー"][i % 2]}})
        for path in ("/", "/sale", "/item/1")[: 1 + i % 3]:
            batch.append({"type": "page", "userId": uid, "name": "Page", "properties": {"path": path}})
        batch.append({"type": "track", "userId": uid, "event": "view", "context": {"channel": "web"},
                      "properties": {"sku": f"SKU-{i}", "category": "アウター"}})  # fmt: skip
        if i % 2 == 0:
            batch.append({"type": "track", "userId": uid, "event": "buy", "context": {"channel": "store",
                          "store_id": "S001"}, "properties": {"revenue": 12000}})  # fmt: skip
            batch.append({"type": "track", "userId": uid, "event": "checkin", "context": {"channel": "store",
                          "store_id": "S001"}})  # fmt: skip
    assert ws.ingest("/v1/batch", {"batch": batch}).status_code == 200
    return ws


def _preview(ws: Any, rule: dict[str, Any]) -> dict[str, Any]:
    with ws.client() as c:
        r = c.post("/api/v1/segments/preview", json={"rule": rule, "sample": 0})
    assert r.status_code == 200, r.text
    return r.json()


def _short(warnings: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(w["path"], w["kind"], w["name"], w["suggestions"]) for w in warnings]


def test_did_page_counts_nobody_and_says_page_views_are_dollar_page(shop: Any) -> None:
    body = _preview(shop, {"did": "page"})
    assert body["count"] == 0
    (w,) = body["warnings"]
    assert w == {
        "path": "rule.did", "kind": "unknown_event", "name": "page", "event": None, "suggestions": ["$page"],
        "message": "no event 'page' has been seen in this workspace; did you mean '$page' (page views)?",
        "index": None,
    }  # fmt: skip
    views = _preview(shop, {"did": "$page"})
    assert views["count"] == 8 and views["warnings"] == []
    sale = _preview(shop, {"did": "$page", "where": {"path": "/sale"}, "count": {"op": "gte", "value": 1}})
    assert sale["count"] == 5 and sale["warnings"] == []  # W-1, 2, 4, 5, 7 saw a second page


@pytest.mark.parametrize(
    ("rule", "warnings"),
    [
        ({"did": "biy"}, [("rule.did", "unknown_event", "biy", ["buy"])]),
        ({"all": [{"did": "buy"}, {"trait": "member_rnk", "op": "exists"}]},
         [("rule.all[1].trait", "unknown_trait", "member_rnk", ["member_rank"])]),
        ({"did": "buy", "store_id": "S0001"}, [("rule.store_id", "unknown_store", "S0001", ["S001"])]),
        ({"did": "view", "where": {"categry": "アウター"}},
         [("rule.where.categry", "unknown_property", "categry", ["category"])]),
        ({"did": "checkin", "channel": "web"}, [("rule.channel", "unknown_channel", "web", ["store"])]),
        ({"data": "buy.revenu", "stat": "sum", "op": "gte", "value": 1},
         [("rule.data", "unknown_field", "buy.revenu", ["buy.revenue"])]),
    ],
)  # fmt: skip
def test_preview_warns_of_each_name_the_workspace_never_saw(
    shop: Any, rule: dict[str, Any], warnings: list[Any]
) -> None:
    body = _preview(shop, rule)
    assert body["count"] == 0 and _short(body["warnings"]) == warnings


def test_an_event_sent_just_now_is_seen_at_once(workspace: Any) -> None:
    assert _short(_preview(workspace, {"did": "wishlist"})["warnings"])[0][1] == "unknown_event"
    assert workspace.ingest("/v1/track", {"userId": "N-1", "event": "wishlist"}).status_code == 200
    assert _preview(workspace, {"did": "wishlist"}) | {"sql": ""} == {
        "count": 1, "sample": [], "sql": "", "evaluated_on": _preview(workspace, {"did": "x"})["evaluated_on"],
        "warnings": [],
    }  # fmt: skip


def test_a_segment_put_with_warnings_is_saved_and_says_them(shop: Any) -> None:
    rule = {"any": [{"did": "page"}, {"did": "$page", "where": {"path": "/item/1"}}]}
    with shop.client() as c:
        r = c.put("/api/v1/segments/deep_browsers", json={"rule": rule})
        assert r.status_code == 200, r.text
        assert _short(r.json()["warnings"]) == [("rule.any[0].did", "unknown_event", "page", ["$page"])]
        assert c.get("/api/v1/segments/deep_browsers").json()["body"]["rule"] == rule  # saved all the same
        deadline = time.monotonic() + 20
        while (d := c.get("/api/v1/segments/deep_browsers").json())["status"] != "ready":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # page views are counted live as the preview counts them: W-2 and W-5 saw /item/1
        assert d["members"] == _preview(shop, rule)["count"] == 2
        assert d.get("warnings") is None  # a GET does not check


def test_a_computed_trait_put_says_what_it_names_that_was_never_seen(shop: Any) -> None:
    with shop.client() as c:
        r = c.put("/api/v1/computed-traits/page_views", json={"event": "page", "agg": "count"})
        assert r.status_code == 200, r.text
        assert _short(r.json()["warnings"]) == [("event", "unknown_event", "page", ["$page"])]
        r = c.put("/api/v1/computed-traits/spend", json={"event": "buy", "agg": "sum", "property": "revnue"})
        assert _short(r.json()["warnings"]) == [("property", "unknown_property", "revnue", ["revenue"])]
        r = c.put("/api/v1/computed-traits/views", json={"event": "$page", "agg": "count", "channel": "web"})
        assert r.json()["warnings"] == []


def test_apply_gives_each_definitions_warnings_with_its_index(shop: Any) -> None:
    definitions = [
        {"kind": "computed_trait", "name": "store_spend", "event": "buy", "agg": "sum", "property": "revenue",
         "store_id": "S002"},
        {"kind": "segment", "name": "fine", "rule": {"did": "buy", "channel": "store"}},
        {"kind": "segment", "name": "typos", "rule": {"all": [{"did": "chekin"}, {"computed": "store_spend",
                                                                                  "op": "gte", "value": 1}]}},
    ]  # fmt: skip
    with shop.client() as c:
        r = c.post("/api/v1/apply", json={"definitions": definitions, "dry_run": True})
    assert r.status_code == 200, r.text
    assert [(w["index"], w["path"], w["kind"], w["suggestions"]) for w in r.json()["warnings"]] == [
        (0, "definitions[0].store_id", "unknown_store", ["S001"]),
        (2, "definitions[2].rule.all[0].did", "unknown_event", ["checkin"]),
    ]


def test_preview_refuses_an_undefined_computed_trait_naming_its_place_and_the_nearest(shop: Any) -> None:
    with shop.client() as c:
        r = c.post(
            "/api/v1/segments/preview", json={"rule": {"all": [{"did": "buy"}, {"computed": "ltv2", "op": "exists"}]}}
        )
    assert r.status_code == 400
    (e,) = r.json()["error"]["errors"]
    assert e["field"] == "rule.all[1].computed" and "did you mean 'ltv'" in e["reason"]
