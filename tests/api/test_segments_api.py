"""Segment preview over the admin API: a live count and a sample, the same as SQL says."""

from __future__ import annotations

from typing import Any


def _preview(ws: Any, rule: dict[str, Any], **extra: Any) -> Any:
    with ws.client() as c:
        return c.post("/api/v1/segments/preview", json={"rule": rule, **extra})


def test_preview_counts_store_buyers_who_browse_the_web(workspace) -> None:
    batch = []
    for i in range(6):
        uid = f"S-{i}"
        batch.append(
            {"type": "track", "userId": uid, "event": "buy", "context": {"channel": "store", "store_id": "S001"}}
        )
        if i % 2 == 0:
            batch.append({"type": "track", "userId": uid, "event": "view", "context": {"channel": "web"},
                          "properties": {"category": "アウター"}})  # fmt: skip
        if i == 0:
            batch.append({"type": "identify", "userId": uid, "traits": {"member_rank": "ゴールド"}})
    assert workspace.ingest("/v1/batch", {"batch": batch}).status_code == 200
    rule = {"all": [{"did": "buy", "channel": "store", "within_days": 90},
                    {"did": "view", "channel": "web", "where": {"category": "アウター"}}]}  # fmt: skip
    r = _preview(workspace, rule, dialect="snowflake", sample=2)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 3 and len(body["sample"]) == 2
    assert all(p["identifiers"]["user_id"][0] in {"S-0", "S-2", "S-4"} for p in body["sample"])
    assert "JSON_EXTRACT_PATH_TEXT" in body["sql"]  # shown in the asked dialect (Snowflake's JSON access)
    gold = _preview(workspace, {"trait": "member_rank", "op": "eq", "value": "ゴールド"}).json()
    assert gold["count"] == 1 and gold["sample"][0]["identifiers"]["user_id"] == ["S-0"]


def test_preview_refuses_an_invalid_rule_with_the_exact_path(workspace) -> None:
    r = _preview(workspace, {"any": [{"did": "buy"}, {"did": "buy", "within_days": -1}]})
    assert r.status_code == 400
    assert r.json()["error"]["errors"][0]["field"] == "rule.any[1].within_days"
    r = _preview(workspace, {"did": "buy"}, dialect="oracle")
    assert r.status_code == 400 and r.json()["error"]["errors"][0]["field"] == "dialect"


AWKWARD_RULES = [
    {"trait": "a\\", "op": "eq", "value": "\\"},
    {"trait": 'a"b', "op": "contains", "value": "'"},
    {"did": "buy", "where": {"$.x[0]": "\x00"}, "store_id": "😀"},
    {"did": "\\", "since": "1900-01-01"},
    {"first_did": "buy", "within_days": 3660},
    {"data": "buy.a\\b", "stat": "most_frequent", "op": "in", "value": ["x", 1, True]},
    {"last": "buy", "property": "items.category", "op": "exists"},
    {"data": "$sessions", "stat": "count", "window": "this_session", "op": "gte", "value": 1},
    {"computed": "ltv", "op": "gte", "value": 1.5},
    {"computed": "cross_channel_class", "op": "eq", "value": "web only"},
    {"not": {"any": [{"all": [{"did": "view"}, {"not": {"did": "buy"}}]}, {"trait": " ", "op": "not_exists"}]}},
]


def test_preview_answers_any_valid_rule_in_every_dialect(workspace) -> None:
    event = {"userId": "U-odd", "event": "buy", "properties": {"a\\b": "x"}}
    assert workspace.ingest("/v1/track", event).status_code == 200
    for rule in AWKWARD_RULES:
        for dialect in ("duckdb", "postgres", "bigquery", "snowflake", "clickhouse"):
            r = _preview(workspace, rule, dialect=dialect, sample=0)
            assert r.status_code == 200, (rule, dialect, r.text)
            assert r.json()["sample"] == [] and r.json()["sql"]
    r = _preview(workspace, {"data": "buy.a\\b", "stat": "most_frequent", "op": "eq", "value": "x"}, sample=5)
    assert r.json()["count"] == 1
