"""The hot property columns of `events` (`core.ports.HOT_PROPERTIES`) on a real DuckDB file.

A column must hold what the JSON path the SQL compilers read holds (`where_property`,
`number_of`) for every input, including the awkward ones; an analytics file from before
the columns gets them, filled, when the store opens; and a compiled rule reading a hot
property names the same people through the column as through the JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from tsunagu.core.computed import parse_computed
from tsunagu.core.ports import EVENT_COLUMNS, HOT_PROPERTIES, AnalyticsBatch
from tsunagu.core.segments import parse_rule
from tsunagu.sql._rows import case, col, json_text, json_type, json_value, lit, number_of, to_sql
from tsunagu.sql.segments import compile_segment, computed_query
from tsunagu.storage.duckdb_analytics import _SCHEMA, DuckDBAnalytics

NOW = 1_790_000_000_000
TZ = "Asia/Tokyo"
TODAY = NOW // 86_400_000
HOT = frozenset(HOT_PROPERTIES)

# properties whose hot values are easy to get wrong: missing, null, another JSON type,
# numbers past int64 and uint64 and past a double, nested objects and lists, odd text
TRICKY: list[bytes] = [
    b"{}",
    b'{"category": null, "revenue": null, "sku": null, "price": null}',
    b'{"category": "tops", "revenue": 1200, "sku": "SKU-1", "price": 990}',
    b'{"category": "", "revenue": 0, "sku": "\\u30a2\\u30a6\\u30bf\\u30fc", "price": -0.0}',
    b'{"category": 3, "revenue": "100", "sku": 7.5, "price": "990"}',
    b'{"category": true, "revenue": false, "sku": false, "price": true}',
    b'{"category": ["tops", "outer"], "revenue": [100, 200], "items": [{"category": "tops", "price": 5}]}',
    b'{"category": {"name": "tops"}, "revenue": {"amount": 100}}',
    b'{"revenue": 18446744073709551616, "price": 9223372036854775808}',
    b'{"revenue": 1180591620717411303424, "price": -9223372036854775809}',
    b'{"revenue": 1e308, "price": 1.7976931348623157e308}',
    b'{"revenue": 1e400, "price": -1e400}',
    b'{"revenue": 12.345678901234567, "price": 5e-324}',
    b'{"category": "tops\\u0000x", "sku": "a\\"b\'c"}',
    b'{"Category": "tops", "REVENUE": 5, "category ": "x"}',
    b'{"nested": {"category": "tops", "revenue": 5}}',
]


def _row(batch: AnalyticsBatch, seq: int, message_id: str, person_id: str, **values: Any) -> None:
    row = {
        "seq": seq, "message_id": message_id, "person_id": person_id, "type": "track", "event": "buy",
        "channel": "web", "store_id": None, "timestamp": NOW, "received_at": NOW, "user_id": None,
        "anonymous_id": None, "properties": b"{}", "context": b"{}", "traits": {},
    } | values  # fmt: skip
    for column in EVENT_COLUMNS:
        batch.events[column].append(row[column])


def _json_path(key: str) -> str:
    """What the compilers read of `key` from the JSON (the expression a column stands for)."""
    value = json_value(col("properties"), [key])
    text = json_text(col("properties"), [key])
    if HOT_PROPERTIES[key] == "DOUBLE":
        return to_sql(number_of(json_type(value), text))
    return to_sql(case([(exp.EQ(this=json_type(value), expression=lit("VARCHAR")), text)]))


def _disagreeing(con: Any) -> list[tuple[Any, ...]]:
    """Rows where a hot column differs from its JSON path (NULL equals NULL)."""
    checks = " OR ".join(f'"{k}" IS DISTINCT FROM {_json_path(k)}' for k in HOT_PROPERTIES)
    return con.execute(f"SELECT message_id, properties FROM events WHERE {checks}").fetchall()


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = DuckDBAnalytics(tmp_path / "analytics.duckdb", memory_limit="256MB")
    yield s
    s.close()


def test_written_columns_hold_what_the_json_path_holds_for_tricky_properties(store: DuckDBAnalytics) -> None:
    batch = AnalyticsBatch(seq=1)
    for i, props in enumerate(TRICKY):
        _row(batch, 1, f"m{i}", "p1", properties=props)
    store.write(batch)
    assert store.rejected == 0
    assert store.hot_properties == HOT
    with store.reader() as con:
        assert _disagreeing(con) == []
        got = {m: (c, r, s, p) for m, c, r, s, p in con.execute(
            "SELECT message_id, category, revenue, sku, price FROM events").fetchall()}  # fmt: skip
    assert got["m0"] == (None, None, None, None)  # missing
    assert got["m1"] == (None, None, None, None)  # null
    assert got["m2"] == ("tops", 1200.0, "SKU-1", 990.0)
    assert got["m3"][:3] == ("", 0.0, "アウター")
    assert got["m4"] == (None, None, None, None)  # each of another type than its column
    assert got["m5"] == (None, None, None, None)  # booleans are not numbers here
    assert got["m6"][:2] == (None, None) and got["m7"][:2] == (None, None)  # lists, objects
    assert got["m8"][1] == pytest.approx(2.0**64) and got["m8"][3] == pytest.approx(2.0**63)
    assert got["m9"][1] == pytest.approx(2.0**70) and got["m9"][3] == pytest.approx(-(2.0**63))
    assert got["m12"][1] == 12.345678901234567
    assert got["m13"][0] == "tops\x00x" and got["m13"][2] == "a\"b'c"
    assert got["m14"] == (None, None, None, None) and got["m15"] == (None, None, None, None)  # keys are exact


def test_system_rows_and_a_refused_row_keep_the_columns_right(store: DuckDBAnalytics) -> None:
    rejects: list[Any] = []
    store._on_reject = rejects.append
    batch = AnalyticsBatch(seq=2)
    _row(batch, 1, "ok", "p1", properties=b'{"category": "tops", "revenue": 5}')
    _row(batch, 2, "bad", "p1", properties=b'{"category": "tops", "revenue": ')  # not JSON: refused alone
    _row(batch, 2, "ok2", "p1", properties=b'{"revenue": 7.5}')
    store.write(batch)
    assert [r.message_id for r in rejects] == ["bad"]
    assert store.query("SELECT message_id, category, revenue FROM events ORDER BY seq, message_id") == [
        ("ok", "tops", 5.0), ("ok2", None, 7.5),
    ]  # fmt: skip


def _old_file(path: Path, rows: list[bytes]) -> None:
    """An analytics file as a store before the hot columns wrote it."""
    con = duckdb.connect(str(path))
    con.execute(_SCHEMA)
    con.executemany(
        "INSERT INTO events VALUES (?, ?, 'p1', 'track', 'buy', 'web', NULL, make_timestamptz(? * 1000),"
        " make_timestamptz(? * 1000), NULL, NULL, ?, '{}', '{}')",
        [(i + 1, f"m{i}", NOW, NOW, props.decode()) for i, props in enumerate(rows)],
    )
    con.execute("INSERT INTO meta VALUES ('applied_seq', ?)", [len(rows)])
    con.close()


def test_opening_an_old_file_adds_the_columns_and_fills_them_from_the_json(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    _old_file(path, TRICKY)
    store = DuckDBAnalytics(path, memory_limit="256MB")
    try:
        assert store.applied_seq() == len(TRICKY)
        with store.reader() as con:
            assert _disagreeing(con) == []
            assert con.execute("SELECT count(*) FROM events WHERE category = 'tops'").fetchone() == (1,)
            # the view shows them too (it is made again after the columns are added)
            assert con.execute("SELECT sum(revenue) FROM person_events WHERE message_id = 'm2'").fetchone() == (1200.0,)
        batch = AnalyticsBatch(seq=len(TRICKY) + 1)
        _row(batch, len(TRICKY) + 1, "new", "p1", properties=b'{"category": "outer", "price": 12}')
        store.write(batch)
        assert store.query("SELECT category, price FROM events WHERE message_id = 'new'") == [("outer", 12.0)]
    finally:
        store.close()
    again = DuckDBAnalytics(path, memory_limit="256MB")  # a second open adds nothing
    try:
        assert again.query("SELECT count(*) FROM events WHERE category IS NOT NULL") == [(4,)]  # m2, m3, m13, new
    finally:
        again.close()


# -- a compiled rule: the same people through the column and through the JSON --------------

values = st.one_of(
    st.sampled_from(["tops", "outer", "100", "", "0"]),
    st.integers(-2, 3),
    st.sampled_from([100, 100.0, 250.5, 2**64, -(2**63) - 1, 1e300]),
    st.booleans(),
    st.none(),
    st.just(["tops"]),
    st.just([100]),
    st.just({"category": "tops"}),
)
where_values = st.one_of(st.sampled_from(["tops", "outer", "100", "0"]), st.sampled_from([100, 0, 1, 250.5, 3]),
                         st.booleans())  # fmt: skip


@st.composite
def properties(draw: st.DrawFn) -> bytes:
    out = {k: draw(values) for k in draw(st.lists(st.sampled_from(sorted(HOT)), unique=True))}
    return json.dumps(out).encode()


@st.composite
def hot_rules(draw: st.DrawFn) -> dict[str, Any]:
    key = draw(st.sampled_from(sorted(HOT)))
    kind = draw(st.integers(0, 2))
    if kind == 0:
        rule: dict[str, Any] = {"did": draw(st.sampled_from(["buy", "view"])), "where": {key: draw(where_values)}}
        rule["count"] = {"op": draw(st.sampled_from(["gte", "eq"])), "value": draw(st.integers(0, 2))}
        return rule
    stat = draw(st.sampled_from(["sum", "min", "max", "avg", "count", "true_count", "most_frequent", "first"]))
    if kind == 1:
        window = draw(st.sampled_from(["all_time", "last_7_days"]))
        op = draw(st.sampled_from(["gte", "lt", "eq", "exists"]))
        return {"data": f"buy.{key}", "stat": stat, "window": window, "op": op,
                "value": draw(st.sampled_from([0, 100, 150]))}  # fmt: skip
    return {"not": {"did": "buy", "where": {key: draw(where_values)}}}


def _events_batch(props: list[tuple[str, str, bytes]]) -> AnalyticsBatch:
    batch = AnalyticsBatch(seq=len(props))
    for i, (pid, event, p) in enumerate(props):
        _row(batch, i + 1, f"m{i}", pid, event=event, properties=p, timestamp=NOW - i * 3_600_000)
    batch.people = [(pid, {}, {}, NOW, NOW, {}, {}, 1, []) for pid in sorted({p for p, _, _ in props})]
    return batch


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["p1", "p2", "p3"]), st.sampled_from(["buy", "view"]), properties()),
        min_size=1,
        max_size=12,
    ),
    rule_json=hot_rules(),
)
def test_a_rule_on_a_hot_property_names_the_same_people_via_the_column_and_the_json(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str, bytes]], rule_json: dict[str, Any]
) -> None:
    path = tmp_path_factory.mktemp("hot") / "analytics.duckdb"
    store = DuckDBAnalytics(path, memory_limit="256MB")
    try:
        store.write(_events_batch(rows))
        rule = parse_rule(rule_json)
        via_json = compile_segment(rule, today=TODAY, timezone=TZ)
        via_column = compile_segment(rule, today=TODAY, timezone=TZ, hot=store.hot_properties)
        members = lambda sql: {r[0] for r in store.query(sql)}  # noqa: E731
        assert members(via_column) == members(via_json), (rule_json, rows)
    finally:
        store.close()


def test_the_bench_segment_reads_the_columns_not_the_json() -> None:
    rule = parse_rule({"all": [
        {"did": "view", "where": {"category": "アウター"}, "within_days": 7},
        {"data": "buy.revenue", "stat": "avg", "window": "all_time", "op": "gte", "value": 10000},
    ]})  # fmt: skip
    sql = compile_segment(rule, today=TODAY, timezone=TZ, hot=HOT)
    assert "properties" not in sql and "category = 'アウター'" in sql
    # where the column cannot say the same, the JSON path stays
    for other in ({"did": "view", "where": {"category": 3}}, {"did": "buy", "where": {"revenue": "100"}},
                  {"did": "buy", "where": {"revenue": 1}},
                  {"data": "buy.revenue", "stat": "count", "op": "gte", "value": 1}):  # fmt: skip
        assert "properties" in compile_segment(parse_rule(other), today=TODAY, timezone=TZ, hot=HOT), other


def test_a_computed_sum_over_a_hot_property_is_the_same_via_the_column(store: DuckDBAnalytics) -> None:
    rows = [("p1", "buy", p) for p in TRICKY] + [("p2", "buy", b'{"revenue": 300, "category": "tops"}')]
    store.write(_events_batch(rows))
    trait = parse_computed({"name": "ltv", "event": "buy", "agg": "sum", "property": "revenue",
                            "where": {"category": "tops"}})  # fmt: skip
    plain = to_sql(computed_query(trait, today=TODAY, timezone=TZ))
    hot = to_sql(computed_query(trait, today=TODAY, timezone=TZ, hot=HOT))
    assert plain != hot
    assert sorted(store.query(hot)) == sorted(store.query(plain))
