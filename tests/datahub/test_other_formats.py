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
