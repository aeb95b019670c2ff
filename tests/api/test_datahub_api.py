"""`/api/v1/tables`: imports over real HTTP, rejects as JSON and CSV, rollback, errors in
the one shape, and workspaces that never see each other's tables."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import new_workspace

MEMBERS = "会員番号,ランク,ポイント\n0001,ゴールド,１，２００\n0002,シルバー\n0003,ブロンズ,300\n".encode("cp932")


def _import(ws: Any, table: str, data: bytes, name: str = "members.csv", **params: Any) -> httpx.Response:
    with ws.client() as c:
        return c.post(f"/api/v1/tables/{table}/imports", params=params, content=data, headers={"X-Filename": name})


def test_a_shift_jis_file_is_imported_over_http_with_its_rejects(server: Any) -> None:
    ws = new_workspace(server)
    r = _import(ws, "members", MEMBERS)
    assert r.status_code == 201, r.text
    body = r.json()
    assert {k: body[k] for k in ("table", "version", "rows_imported", "rows_rejected", "encoding")} == {
        "table": "members", "version": 1, "rows_imported": 2, "rows_rejected": 1, "encoding": "cp932",
    }  # fmt: skip
    assert body["rejects"] == [
        {"line": 3, "column": None, "reason": "3 fields expected, 2 found", "text": "0002,シルバー"}
    ]
    with ws.client() as c:
        t = c.get("/api/v1/tables/members").json()
        assert t["columns"] == [{"name": "会員番号", "type": "text"}, {"name": "ランク", "type": "text"},
                                {"name": "ポイント", "type": "integer"}]  # fmt: skip
        assert t["sample"] == [["0001", "ゴールド", 1200], ["0003", "ブロンズ", 300]]
        assert [v["version"] for v in t["history"]] == [1] and t["history"][0]["current"]
        csv = c.get("/api/v1/tables/members/rejects", params={"format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv")
        assert csv.content.decode("utf-8").startswith(
            '\ufeffline,column,reason,text\r\n3,,"3 fields expected, 2 found"'
        )
        assert c.get("/api/v1/tables").json()["tables"][0]["rows"] == 2


def test_upsert_and_rollback_over_http(server: Any) -> None:
    ws = new_workspace(server)
    assert _import(ws, "members", MEMBERS).status_code == 201
    r = _import(ws, "members", "会員番号,ポイント\n0001,5\n0009,7\n".encode(), mode="upsert", key="会員番号")
    assert r.status_code == 201, r.text and r.json()["rows_total"] == 3
    with ws.client() as c:
        rows = c.get("/api/v1/tables/members/rows").json()["rows"]
        assert sorted(rows, key=lambda x: x[0]) == [["0001", None, 5], ["0003", "ブロンズ", 300], ["0009", None, 7]]
        back = c.post("/api/v1/tables/members/rollback", json={"version": 1})
        assert back.status_code == 200 and back.json()["version"] == 3
        assert c.get("/api/v1/tables/members/rows").json()["rows"] == [
            ["0001", "ゴールド", 1200],
            ["0003", "ブロンズ", 300],
        ]


def test_errors_have_the_one_shape_and_name_the_field(server: Any) -> None:
    ws = new_workspace(server)
    cases = [
        (_import(ws, "Bad Name", b"a\n1\n"), 400, "table"),
        (_import(ws, "t", b"a\n1\n", mode="merge"), 400, "mode"),
        (_import(ws, "t", b"a\n1\n", mode="upsert"), 400, "key"),
        (_import(ws, "t", b"a\n1\n", name="t.xyz"), 400, "format"),
        (_import(ws, "t", b"", name="t.csv"), 400, "body"),
        (_import(ws, "t", b"a\n1\n", types="a:money"), 400, "types.a"),
    ]
    for r, status, field in cases:
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert err["code"] == "invalid_input" and field in [e["field"] for e in err["errors"]], err
    with ws.client() as c:
        missing = c.get("/api/v1/tables/nope")
        assert missing.status_code == 404 and missing.json()["error"]["errors"][0]["field"] == "table"
    assert httpx.get(f"{ws.url}/api/v1/tables").status_code == 401


def test_a_workspace_sees_only_its_own_tables(server: Any) -> None:
    a, b = new_workspace(server), new_workspace(server)
    assert _import(a, "members", MEMBERS).status_code == 201
    with b.client() as c:
        assert c.get("/api/v1/tables").json() == {"tables": []}
        assert c.get("/api/v1/tables/members").status_code == 404


def test_a_file_larger_than_the_json_limit_is_streamed_in(server: Any) -> None:
    ws = new_workspace(server)
    data = b"id,text\n" + b"".join(b"%d,%s\n" % (i, b"x" * 40) for i in range(60_000))  # ~3 MB
    r = _import(ws, "big", data, name="big.csv")
    assert r.status_code == 201, r.text[:300]
    assert r.json()["rows_imported"] == 60_000
