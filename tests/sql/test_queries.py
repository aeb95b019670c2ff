"""The timeline, search and report queries (`tsunagu.sql.timeline`, `.search`, `.reports`)
run on a DuckDB file with the analytics store's schema, and treat every value as data.

Whatever a search text, a filter, a trait name or a segment name holds (quotes, `%`, `_`,
backslashes, NUL, unicode, pieces of SQL), it is a bound parameter: the query runs, and
finds what holds exactly that text, nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot

from tsunagu.core.segments import parse_rule
from tsunagu.history import DDL as HISTORY_DDL
from tsunagu.sql.reports import (
    arrived_before_query,
    entered_at_query,
    first_event_day_query,
    history_days_query,
    last_seq_query,
    members_at_query,
    preview_query,
    segment_days_query,
    store_names_query,
)
from tsunagu.sql.search import PeopleFilter, like_pattern, people_count_query, people_search_query, people_totals_query
from tsunagu.sql.segments import segment_query
from tsunagu.sql.timeline import live_feed_query, timeline_query, user_data_query
from tsunagu.storage.duckdb_analytics import _SCHEMA

HOSTILE = ["'", "''", '"', "\\", "a\\b", "\\%", "%", "_", "a%b", "a_b", "%_%", "*", "?", "$1", "\x00", "😀",
           "名前", "é", " ", "\n", "'; DROP TABLE people; --", "' OR '1'='1", ") OR (1=1", "/*", "*/", "~0", "a/b",
           "$.x", "[0]", "ESCAPE", "NULL"]  # fmt: skip
T0 = 1_790_000_000_000  # epoch ms


def _event(seq: int, pid: str, type_: str = "track", event: str | None = "view", *, ts: int, channel: str = "web",
           props: dict[str, Any] | None = None, store: str | None = None) -> tuple[Any, ...]:  # fmt: skip
    return (seq, f"m{seq:04d}", pid, type_, event, channel, store, ts, ts, None, None,
            json.dumps(props or {}, ensure_ascii=False))  # fmt: skip


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect(str(tmp_path / "analytics.duckdb"))
    c.execute("SET TimeZone = 'UTC'")
    c.execute(_SCHEMA)
    c.execute(HISTORY_DDL)
    yield c
    c.close()


def _load(con: duckdb.DuckDBPyConnection, events: list[tuple[Any, ...]]) -> None:
    con.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, make_timestamptz(? * 1000), make_timestamptz(? * 1000),"
        " ?, ?, ?, '{}', '{}')",
        events,
    )


def _people(con: duckdb.DuckDBPyConnection, people: list[tuple[str, dict[str, Any], dict[str, Any], int]]) -> None:
    con.executemany(
        "INSERT INTO people (person_id, identifiers, traits, last_seen) VALUES (?, ?, ?, make_timestamptz(? * 1000))",
        [(p, json.dumps(i, ensure_ascii=False), json.dumps(t, ensure_ascii=False), s) for p, i, t, s in people],
    )


def _run(con: duckdb.DuckDBPyConnection, built: tuple[str, list[Any]]) -> list[tuple[Any, ...]]:
    sql, params = built
    return con.execute(sql, params).fetchall()


def _every_query() -> list[tuple[str, list[Any]]]:
    members = segment_query(parse_rule({"did": "buy"}), today=20_000, timezone="Asia/Tokyo")
    return [
        timeline_query(["p"], limit=10),
        timeline_query(["p", "q"], limit=3, cursor=(T0, "m1"), events=["x"], channels=["web"], types=["track"]),
        user_data_query(["p"]),
        live_feed_query(50),
        people_search_query(PeopleFilter(text="x", trait="t", value="v", exclude=["p"]), limit=5, offset=2),
        people_search_query(PeopleFilter(trait="t"), limit=5, offset=0),
        people_count_query(PeopleFilter()),
        people_totals_query(),
        segment_days_query("s", [T0], [T0 + 1]),
        members_at_query("s", T0),
        entered_at_query("s", ["p"]),
        history_days_query("s", 1, date(2026, 1, 1), date(2026, 1, 2)),
        store_names_query(),
        preview_query(members, 5),
        last_seq_query(),
        arrived_before_query(0, datetime(2026, 1, 1, tzinfo=UTC)),
        first_event_day_query("Asia/Tokyo"),
    ]


@pytest.mark.parametrize("built", _every_query(), ids=lambda b: b[0][:40])
def test_each_query_parses_binds_one_parameter_a_placeholder_and_runs(
    con: duckdb.DuckDBPyConnection, built: tuple[str, list[Any]]
) -> None:
    sql, params = built
    tree = sqlglot.parse_one(sql, read="duckdb")
    assert len(list(tree.find_all(sqlglot.exp.Placeholder))) == len(params)
    con.execute(sql, params).fetchall()


# -- the timeline ------------------------------------------------------------------------


def test_the_timeline_pages_newest_first_through_every_id_and_filter(con: duckdb.DuckDBPyConnection) -> None:
    events = [_event(i, "p" if i % 3 else "p-old", ts=T0 + (i // 2) * 1000, channel=("web", "store")[i % 2],
                     event=("view", "buy")[i % 4 == 0]) for i in range(1, 30)]  # fmt: skip
    events.append(_event(99, "someone-else", ts=T0))
    _load(con, events)
    want = sorted(((T0 + (i // 2) * 1000, f"m{i:04d}") for i in range(1, 30)), reverse=True)
    got: list[tuple[int, str]] = []
    cursor = None
    while True:
        sql, params = timeline_query(["p", "p-old"], limit=4, cursor=cursor)
        rows = con.execute(sql, params).fetchall()
        page = [(r[5], r[0]) for r in rows[:4]]
        got += page
        if len(rows) <= 4:
            break
        cursor = page[-1]
    assert got == want
    sql, params = timeline_query(["p", "p-old"], limit=100, events=["buy"], channels=["web"], types=["track"])
    rows = con.execute(sql, params).fetchall()
    assert {r[0] for r in rows} == {f"m{i:04d}" for i in range(1, 30) if i % 4 == 0 and i % 2 == 0}


@pytest.mark.parametrize("value", HOSTILE)
def test_timeline_filters_and_ids_are_data(con: duckdb.DuckDBPyConnection, value: str) -> None:
    _load(con, [_event(1, value, event=value, channel=value, ts=T0), _event(2, value, event="view", ts=T0),
                _event(3, "other", event="view", ts=T0)])  # fmt: skip
    assert {r[0] for r in _run(con, timeline_query([value], limit=10, events=[value]))} == {"m0001"}
    assert {r[0] for r in _run(con, timeline_query([value], limit=10, channels=[value]))} == {"m0001"}
    assert {r[0] for r in _run(con, timeline_query([value], limit=10))} == {"m0001", "m0002"}
    assert _run(con, timeline_query([value], limit=10, types=[value])) == []
    assert [r[3] for r in _run(con, user_data_query([value]))] == ["m0001", "m0002"]
    assert con.execute("SELECT count(*) FROM people").fetchone() is not None  # nothing was dropped


# -- people search -----------------------------------------------------------------------


def test_like_pattern_escapes_its_wildcards_and_escape_character() -> None:
    assert like_pattern("a%b_c\\d") == "%a\\%b\\_c\\\\d%"


@pytest.mark.parametrize("needle", HOSTILE)
def test_a_search_text_matches_itself_as_a_substring_and_nothing_else(
    con: duckdb.DuckDBPyConnection, needle: str
) -> None:
    _people(con, [(f"p{i}", {"user_id": [f"u{i}"]}, {"note": value}, T0 + i) for i, value in enumerate(HOSTILE)])
    texts = con.execute("SELECT person_id, CAST(traits AS VARCHAR), CAST(identifiers AS VARCHAR) FROM people")
    want = {pid for pid, *text in texts.fetchall() if any(needle.lower() in t.lower() for t in text)}
    # the text searched is JSON: a value it escapes (a backslash, a line break) is not found as typed
    assert want or json.dumps(needle, ensure_ascii=False) != f'"{needle}"'
    search = PeopleFilter(text=needle)
    assert {r[0] for r in _run(con, people_search_query(search, limit=100, offset=0))} == want
    assert _run(con, people_count_query(search)) == [(len(want),)]


def test_search_orders_by_last_activity_pages_and_excludes_the_exact_matches(con: duckdb.DuckDBPyConnection) -> None:
    _people(con, [(f"p{i}", {}, {"rank": "gold"}, T0 + i) for i in range(6)])
    search = PeopleFilter(text="GOLD", exclude=["p5"])
    assert [r[0] for r in _run(con, people_search_query(search, limit=2, offset=1))] == ["p3", "p2"]
    assert _run(con, people_count_query(search)) == [(5,)]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_trait_name_and_value_are_data(con: duckdb.DuckDBPyConnection, name: str) -> None:
    _people(con, [("has", {}, {name: name}, T0), ("other", {}, {name + "x": name}, T0 + 1), ("none", {}, {}, T0)])
    present = PeopleFilter(trait=name)
    assert [r[0] for r in _run(con, people_search_query(present, limit=10, offset=0))] == ["has"]
    equal = PeopleFilter(trait=name, value=name)
    assert [r[0] for r in _run(con, people_search_query(equal, limit=10, offset=0))] == ["has"]
    assert _run(con, people_count_query(PeopleFilter(trait=name, value=name + "'"))) == [(0,)]


def test_people_totals_count_those_with_a_member_id(con: duckdb.DuckDBPyConnection) -> None:
    _people(con, [("a", {"user_id": ["u"]}, {}, T0), ("b", {"email": ["e@x"]}, {}, T0)])
    assert _run(con, people_totals_query()) == [(2, 1)]


# -- reports -----------------------------------------------------------------------------


@pytest.mark.parametrize("segment", HOSTILE)
def test_segment_reports_read_only_the_named_segments_markers(con: duckdb.DuckDBPyConnection, segment: str) -> None:
    def marker(seq: int, pid: str, kind: str, ts: int, name: str = segment) -> tuple[Any, ...]:
        return _event(seq, pid, f"segment_{kind}", None, ts=ts, channel="server", props={"segment": name})

    _load(con, [
        marker(1, "a", "enter", T0), marker(2, "b", "enter", T0 + 10), marker(3, "b", "exit", T0 + 1010),
        marker(4, "c", "enter", T0 + 20, name=segment + "x"), marker(5, "c", "enter", T0 + 30, name="other"),
    ])  # fmt: skip
    days = _run(con, segment_days_query(segment, [T0, T0 + 1000], [T0 + 1000, T0 + 2000]))
    assert days == [(0, 2, 0, 2), (1, 0, 1, 1)]
    assert {r[0] for r in _run(con, members_at_query(segment, T0 + 1000))} == {"a", "b"}
    assert {r[0] for r in _run(con, members_at_query(segment, T0 + 2000))} == {"a"}
    assert dict(_run(con, entered_at_query(segment, ["a", "b", "c"]))) == {"a": T0, "b": T0 + 10}
    con.execute("INSERT INTO segment_history VALUES (?, 1, DATE '2026-01-01', 3, 2, 1)", [segment])
    rows = _run(con, history_days_query(segment, 1, date(2025, 12, 31), date(2026, 1, 1)))
    assert rows == [(date(2026, 1, 1), 3, 2, 1)]
    assert _run(con, history_days_query(segment + "'", 1, date(2025, 12, 31), date(2026, 1, 1))) == []


def test_store_names_are_the_latest_name_each_store_was_given(con: duckdb.DuckDBPyConnection) -> None:
    _load(con, [
        _event(1, "a", ts=T0, store="S1", channel="store", props={"store_name": "old"}),
        _event(2, "a", ts=T0 + 1, store="S1", channel="store", props={"store_name": "新宿店"}),
        _event(3, "a", ts=T0 + 2, store="S2", channel="store"),
    ])  # fmt: skip
    assert dict(_run(con, store_names_query())) == {"S1": "新宿店"}


def test_a_preview_counts_the_members_and_lists_a_sample_in_order(con: duckdb.DuckDBPyConnection) -> None:
    _people(con, [(p, {}, {}, T0) for p in ("c", "a", "b")])
    _load(con, [_event(i, p, event="buy", ts=T0) for i, p in enumerate(("c", "a", "b"), 1)])
    members = segment_query(parse_rule({"did": "buy"}), today=T0 // 86_400_000, timezone="UTC")
    ((count, sample),) = _run(con, preview_query(members, 2))
    assert count == 3 and len(sample) == 2 and sample == sorted(sample) and set(sample) <= {"a", "b", "c"}


def test_history_bookkeeping_reads_skip_segment_markers(con: duckdb.DuckDBPyConnection) -> None:
    jst_midnight = int(datetime(2026, 9, 22, 15, 0, tzinfo=UTC).timestamp() * 1000)  # 2026-09-23 in Tokyo
    _load(con, [
        _event(1, "a", "segment_enter", None, ts=jst_midnight - 1, props={"segment": "s"}),
        _event(2, "a", ts=jst_midnight),
        _event(3, "a", ts=jst_midnight - 5),
    ])  # fmt: skip
    assert _run(con, last_seq_query()) == [(3,)]
    assert _run(con, first_event_day_query("Asia/Tokyo")) == [(date(2026, 9, 22),)]
    assert _run(con, first_event_day_query("UTC")) == [(date(2026, 9, 22),)]
    start = datetime.fromtimestamp(jst_midnight / 1000, UTC)
    assert _run(con, arrived_before_query(0, start)) == [(1,)]
    assert _run(con, arrived_before_query(2, start)) == [(1,)]
    assert _run(con, arrived_before_query(3, start)) == [(0,)]
