"""Parquet keeps its types; JSON Lines rejects a line that is not an object, by line."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq

from .conftest import Hub


def test_parquet_keeps_its_types_and_a_named_type_converts(hub: Hub) -> None:
    t = pa.table({
        "sku": ["A-1", "B-2", None], "price": [1200, 980, 500], "ratio": [0.5, 1.0, None],
        "day": [dt.date(2024, 5, 1), None, dt.date(2024, 5, 3)], "code": ["001", "2", "x"],
    })  # fmt: skip
    path = hub.dir / "p.parquet"
    pq.write_table(t, path)
    r = hub.load("items", "items.parquet", path.read_bytes(), types={"code": "integer"})
    assert dict(r.columns) == {"sku": "text", "price": "integer", "ratio": "number", "day": "date", "code": "integer"}
    assert [(j.line, j.column) for j in r.rejects] == [(3, "code")]
    assert hub.rows("items") == [("A-1", 1200, 0.5, dt.date(2024, 5, 1), 1), ("B-2", 980, 1.0, None, 2)]


def test_json_lines_with_nested_values_and_a_broken_line(hub: Hub) -> None:
    lines = [
        json.dumps({"id": 1, "name": "東京", "tags": ["a", "b"], "ok": True}, ensure_ascii=False),
        "{not json",
        "",
        json.dumps({"id": 2, "name": "大阪", "extra": {"k": 1}}, ensure_ascii=False),
        "[1, 2]",
    ]
    r = hub.load("j", "j.jsonl", ("\n".join(lines) + "\n").encode())
    assert [(j.line, j.reason) for j in r.rejects] == [(2, "not a JSON object"), (5, "not a JSON object")]
    assert (r.rows_in_source, r.rows_imported) == (4, 2)
    assert dict(r.columns) == {"id": "integer", "name": "text", "tags": "text", "ok": "boolean", "extra": "text"}
    assert hub.rows("j") == [(1, "東京", '["a","b"]', True, None), (2, "大阪", None, None, '{"k":1}')]


def test_an_excel_sheet_is_typed_like_csv_with_rejects_on_its_row_numbers(hub: Hub) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["会員番号", "来店日", "金額"])
    ws.append(["0001", dt.datetime(2024, 5, 1, 8, 26), 1200])
    ws.append(["0002", "令和6年5月2日", "１，５００"])
    ws.append(["0003", dt.datetime(2024, 5, 3), "たくさん"])
    path = hub.dir / "visits.xlsx"
    wb.save(path)
    r = hub.load("visits", "visits.xlsx", path.read_bytes(), types={"来店日": "timestamp", "金額": "integer"})
    assert r.format == "excel"
    assert [(j.line, j.column, j.reason) for j in r.rejects] == [(4, "金額", "'たくさん' is not an integer")]
    assert hub.rows("visits") == [
        ("0001", dt.datetime(2024, 5, 1, 8, 26), 1200),
        ("0002", dt.datetime(2024, 5, 2), 1500),
    ]


def test_a_postgresql_query_is_imported_with_its_types(hub: Hub) -> None:
    import uuid

    import psycopg
    import pytest

    from tsunagu.core.datahub import ImportOptions
    from tsunagu.datahub import import_database

    url = "postgresql://postgres@127.0.0.1:5432/test"
    name = f"dh_members_{uuid.uuid4().hex[:8]}"
    try:
        con = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:  # pragma: no cover - the machine runs PostgreSQL
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {e}")
    try:
        con.execute(f"CREATE TABLE {name} (member_id text, rank text, points int, joined date)")
        con.execute(f"INSERT INTO {name} VALUES ('0001', 'ゴールド', 1200, '2024-05-01'), ('0002', NULL, NULL, NULL)")
        r = import_database(
            hub.store, "members", url, ImportOptions(), hub.now, query=f"SELECT * FROM {name} ORDER BY 1"
        )
        assert dict(r.columns) == {"member_id": "text", "rank": "text", "points": "integer", "joined": "date"}
        assert r.source.startswith("postgresql://postgres@127.0.0.1:5432/test")
        assert hub.rows("members") == [("0001", "ゴールド", 1200, dt.date(2024, 5, 1)), ("0002", None, None, None)]
    finally:
        con.execute(f"DROP TABLE IF EXISTS {name}")
        con.close()
