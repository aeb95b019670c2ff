"""Segments and computed traits over the admin API: CRUD, apply with a diff, all-or-nothing validation."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

STORE_BUYERS = {"did": "buy", "channel": "store", "within_days": 90}


def _events(ws: Any) -> None:
    batch = []
    for i in range(5):
        uid = f"D-{i}"
        batch.append({"type": "identify", "userId": uid, "traits": {"member_rank": "ゴールド" if i < 2 else "一般"}})
        batch.append({"type": "track", "userId": uid, "event": "buy", "context": {"channel": "store"},
                      "properties": {"revenue": 10000 * (i + 1)}})  # fmt: skip
        if i % 2 == 0:
            batch.append({"type": "track", "userId": uid, "event": "view", "context": {"channel": "web"},
                          "properties": {"category": "アウター"}})  # fmt: skip
    assert ws.ingest("/v1/batch", {"batch": batch}).status_code == 200


def _ready(c: httpx.Client, path: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = c.get(path).json()
        if body["status"] == "ready":
            return body
        time.sleep(0.05)
    raise AssertionError(f"{path} never became ready: {body}")


def _apply(c: httpx.Client, definitions: list[Any], **flags: Any) -> httpx.Response:
    return c.post("/api/v1/apply", json={"definitions": definitions, **flags})


FILE = [
    {"kind": "computed_trait", "name": "store_spend", "event": "buy", "agg": "sum", "property": "revenue",
     "channel": "store"},
    {"kind": "segment", "name": "big_store_buyers", "description": "spent 30,000 or more in stores",
     "rule": {"all": [{"segment": "store_buyers"}, {"computed": "store_spend", "op": "gte", "value": 30000}]}},
    {"kind": "segment", "name": "store_buyers", "rule": STORE_BUYERS},
]  # fmt: skip


def test_a_segment_is_created_read_changed_and_deleted(workspace) -> None:
    _events(workspace)
    with workspace.client() as c:
        r = c.put("/api/v1/segments/gold", json={"rule": {"trait": "member_rank", "op": "eq", "value": "ゴールド"},
                                                 "description": "gold members"})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["changed"] is True and r.json()["version"] == 1
        gold = _ready(c, "/api/v1/segments/gold")
        assert gold["members"] == 2 and gold["body"]["description"] == "gold members"
        again = c.put("/api/v1/segments/gold", json=gold["body"]).json()
        assert again["changed"] is False and again["version"] == 1
        names = [s["name"] for s in c.get("/api/v1/segments").json()["segments"]]
        assert names == ["gold"]
        changed = c.put("/api/v1/segments/gold", json={"rule": {"trait": "member_rank", "op": "eq", "value": "一般"}})
        assert changed.json()["version"] == 2 and changed.json()["members"] == 3
        person = workspace.person("user_id", "D-4")
        assert person["segments"] == ["gold"] and person["computed"]["ltv"] == 50000
        assert c.delete("/api/v1/segments/gold").json() == {"deleted": True, "kind": "segment", "name": "gold"}
        assert c.get("/api/v1/segments/gold").status_code == 404
        assert c.delete("/api/v1/segments/gold").status_code == 404


def test_computed_traits_start_with_the_retail_set_and_can_be_added(workspace) -> None:
    _events(workspace)
    with workspace.client() as c:
        names = {t["name"] for t in c.get("/api/v1/computed-traits").json()["computed_traits"]}
        assert {"ltv", "aov", "cross_channel_class"} <= names
        r = c.put("/api/v1/computed-traits/outer_views", json={"event": "view", "agg": "count",
                                                               "where": {"category": "アウター"}})  # fmt: skip
        assert r.status_code == 200, r.text
        _ready(c, "/api/v1/computed-traits/outer_views")
        assert workspace.person("user_id", "D-0")["computed"]["outer_views"] == 1
        cases = {"cases": [{"when": {"did": "view"}, "value": "browser"}], "else": "none"}
        assert c.put("/api/v1/computed-traits/browses", json=cases).json()["body"] == cases


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/segments/x", {"rule": {"all": [{"did": "buy"}, {"trait": "a", "op": "bigger", "value": 1}]}},
         "rule.all[1].op"),
        ("/api/v1/segments/x", {"rule": {"computed": "nope", "op": "exists"}}, "rule.computed"),
        ("/api/v1/segments/x", {"rule": {"segment": "x"}}, "rule"),  # reads itself
        ("/api/v1/segments/x", {"rule": {"did": "buy"}, "colour": "red"}, "colour"),
        ("/api/v1/segments/bad%20name", {"rule": {"did": "buy"}}, "name"),
        ("/api/v1/computed-traits/x", {"event": "buy", "agg": "median"}, "agg"),
        ("/api/v1/computed-traits/x", {"event": "buy", "agg": "sum"}, "property"),
    ],
)  # fmt: skip
def test_an_invalid_definition_is_refused_with_the_exact_path(shared_workspace, path, body, field) -> None:
    with shared_workspace.client() as c:
        r = c.put(path, json=body)
    assert r.status_code == 400, r.text
    assert field in [e["field"] for e in r.json()["error"]["errors"]], r.json()


def test_a_segment_another_reads_cannot_be_deleted(workspace) -> None:
    with workspace.client() as c:
        assert _apply(c, FILE).status_code == 200
        r = c.delete("/api/v1/segments/store_buyers")
        assert r.status_code == 409 and "big_store_buyers" in r.json()["error"]["message"]
        assert r.json()["error"]["code"] == "conflict"
        r = c.delete("/api/v1/computed-traits/store_spend")
        assert r.status_code == 409
        assert c.get("/api/v1/segments/store_buyers").status_code == 200  # nothing was deleted


def test_apply_creates_in_dependency_order_then_changes_nothing_the_second_time(workspace) -> None:
    _events(workspace)
    with workspace.client() as c:
        dry = _apply(c, FILE, dry_run=True).json()
        assert dry["dry_run"] is True and dry["summary"]["create"] == 3
        assert c.get("/api/v1/segments").json()["segments"] == []  # a dry run changes nothing
        r = _apply(c, FILE)
        assert r.status_code == 200, r.text
        body = r.json()
        order = [(ch["action"], ch["name"]) for ch in body["changes"]]
        # computed traits first, then a segment after the one it reads
        assert order == [("create", "store_spend"), ("create", "store_buyers"), ("create", "big_store_buyers")]
        assert [ch["index"] for ch in body["changes"]] == [0, 2, 1]
        assert body["changes"][2]["after"]["description"] == "spent 30,000 or more in stores"
        big = _ready(c, "/api/v1/segments/big_store_buyers")
        assert big["members"] == 3  # D-2, D-3, D-4 spent 30,000, 40,000, 50,000
        again = _apply(c, FILE).json()
        assert again["summary"] == {"create": 0, "update": 0, "unchanged": 3, "delete": 0}
        assert {ch["status"] for ch in again["changes"]} == {"ready"}


def test_apply_shows_an_update_leaf_by_leaf(workspace) -> None:
    with workspace.client() as c:
        _apply(c, FILE)
        changed = [dict(d) for d in FILE]
        changed[2] = {**FILE[2], "rule": {**STORE_BUYERS, "within_days": 30}}
        body = _apply(c, changed).json()
        update = next(ch for ch in body["changes"] if ch["action"] == "update")
        assert update["name"] == "store_buyers"
        assert update["diff"] == [{"path": "rule.within_days", "before": 90, "after": 30}]
        assert update["before"]["rule"]["within_days"] == 90 and update["after"]["rule"]["within_days"] == 30
        assert c.get("/api/v1/segments/store_buyers").json()["version"] == 2


def test_apply_prunes_only_when_asked_readers_first(workspace) -> None:
    with workspace.client() as c:
        _apply(c, FILE)
        only = [FILE[0]]
        kept = _apply(c, only).json()
        assert kept["summary"]["delete"] == 0 and len(c.get("/api/v1/segments").json()["segments"]) == 2
        dry = _apply(c, only, prune=True, dry_run=True).json()
        deletes = [(ch["kind"], ch["name"]) for ch in dry["changes"] if ch["action"] == "delete"]
        assert deletes[:2] == [("segment", "big_store_buyers"), ("segment", "store_buyers")]
        assert ("computed_trait", "ltv") in deletes  # the retail traits are not in the file either
        assert ("computed_trait", "store_spend") not in deletes
        pruned = _apply(c, only, prune=True)
        assert pruned.status_code == 200, pruned.text
        assert c.get("/api/v1/segments").json()["segments"] == []
        traits = c.get("/api/v1/computed-traits").json()["computed_traits"]
        assert [t["name"] for t in traits] == ["store_spend"]


def test_apply_is_all_or_nothing_and_names_every_problem_by_index_and_path(workspace) -> None:
    bad = [
        *FILE,
        {"kind": "segment", "name": "bad_op", "rule": {"all": [{"trait": "member_rank", "op": "like", "value": "x"}]}},
        {"kind": "segment", "name": "store_buyers", "rule": {"did": "buy"}},
        {"kind": "computed_trait", "name": "broken", "event": "buy", "agg": "sum"},
        {"kind": "audience", "name": "x"},
        {"kind": "segment", "name": "loop_a", "rule": {"segment": "loop_b"}},
        {"kind": "segment", "name": "loop_b", "rule": {"any": [{"did": "view"}, {"segment": "loop_a"}]}},
        {"kind": "segment", "name": "reads_missing", "rule": {"not": {"computed": "nothing", "op": "exists"}}},
    ]
    with workspace.client() as c:
        r = _apply(c, bad)
        assert r.status_code == 400
        errors = {e["field"]: e for e in r.json()["error"]["errors"]}
        assert "definitions[3].rule.all[0].op" in errors and errors["definitions[3].rule.all[0].op"]["index"] == 3
        assert "already defined by definitions[2]" in errors["definitions[4].name"]["reason"]
        assert "definitions[5].property" in errors
        assert "definitions[6].kind" in errors
        assert "loop_a → loop_b → loop_a" in errors["definitions[7].rule"]["reason"]
        assert "definitions[8].rule" in errors
        assert "definitions[9].rule.not.computed" in errors
        # nothing was applied
        assert c.get("/api/v1/segments").json()["segments"] == []
        assert c.get("/api/v1/computed-traits/store_spend").status_code == 404


def test_apply_refuses_a_prune_that_would_delete_what_a_kept_segment_reads(workspace) -> None:
    with workspace.client() as c:
        _apply(c, FILE)
        r = _apply(c, [FILE[1]], prune=True)  # keeps big_store_buyers, which reads both others
        assert r.status_code == 400
        reasons = {e["field"]: e["reason"] for e in r.json()["error"]["errors"]}
        assert "which this apply deletes" in reasons["definitions[0].rule.all[0].segment"]
        assert "which this apply deletes" in reasons["definitions[0].rule.all[1].computed"]


def test_the_person_shows_computed_traits_and_user_data(workspace) -> None:
    _events(workspace)
    person = workspace.person("user_id", "D-2")
    assert person["computed"]["store_purchase_count"] == 1 and person["computed"]["ltv"] == 30000
    with workspace.client() as c:
        assert c.get(f"/api/v1/people/{person['person_id']}")
        data = c.get(f"/api/v1/people/{person['person_id']}/data").json()
    fields = data["fields"]
    assert fields["buy.revenue"]["sum"] == 30000 and fields["buy"]["count"] == 1
    assert fields["view.category"]["most_frequent"] == "アウター"
    assert data["fields_dropped"] == 0 and data["evaluated_on"]


def test_the_schema_is_served_and_every_endpoint_needs_the_token(workspace, server) -> None:
    with workspace.client() as c:
        schema = c.get("/api/v1/schema/definitions").json()
    assert schema["$schema"].endswith("2020-12/schema") and "rule" in schema["$defs"]
    for method, path in [("GET", "/api/v1/segments"), ("PUT", "/api/v1/segments/x"), ("DELETE", "/api/v1/segments/x"),
                         ("GET", "/api/v1/computed-traits"), ("POST", "/api/v1/apply"),
                         ("GET", "/api/v1/schema/definitions")]:  # fmt: skip
        r = httpx.request(method, server.url + path, json={"definitions": []})
        assert r.status_code == 401, (method, path)
        r = httpx.request(method, server.url + path, json={"definitions": []}, auth=(workspace.write_key, ""))
        assert r.status_code == 401, (method, path)


def test_one_workspace_never_sees_anothers_definitions(make_workspace) -> None:
    a, b = make_workspace(), make_workspace()
    with a.client() as ca, b.client() as cb:
        assert _apply(ca, FILE).status_code == 200
        assert cb.get("/api/v1/segments").json()["segments"] == []
        assert cb.get("/api/v1/segments/store_buyers").status_code == 404
        assert cb.delete("/api/v1/segments/store_buyers").status_code == 404
        assert _apply(cb, [], prune=True).status_code == 200  # prunes b's own (the retail traits) only
        assert len(ca.get("/api/v1/segments").json()["segments"]) == 2
        assert ca.get("/api/v1/computed-traits/ltv").status_code == 200


def test_the_openapi_description_documents_the_definition_endpoints(server) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    for path in ("/api/v1/segments/{name}", "/api/v1/computed-traits/{name}", "/api/v1/apply",
                 "/api/v1/people/{person_id}/data", "/api/v1/schema/definitions"):  # fmt: skip
        assert path in spec["paths"], path
    assert "ApplyIn" in spec["components"]["schemas"] and "ChangeOut" in spec["components"]["schemas"]
