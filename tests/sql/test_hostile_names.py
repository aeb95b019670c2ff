"""Names with awkward characters mean the same to the streaming side and to SQL on DuckDB.

Trait names, property names and event names end up in JSON paths (`$."a\\"b"`) and string
literals. Whatever they hold (a backslash, quotes, `$`, `[`, NUL, emoji, a line break), a
rule naming them must run and find the person who has them, both ways.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from tsunagu.core.engine import Engine
from tsunagu.core.events import Event
from tsunagu.core.segments import Segment, day_of, evaluate, parse_rule
from tsunagu.sql.backfill import run_backfill
from tsunagu.sql.segments import DIALECTS, compile_segment

from .history import analytics_store

TZ = "Asia/Tokyo"
NOW = int(datetime(2026, 11, 20, 12, 0, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)

NAMES = ["\\", "a\\b", "a\\\\b", '"', 'a"b', '\\"', "'", "a'b", "$", "$.a", "[", "]", "a[0]", "*", "@", "?(@)",
         "/", "~0", "\x00", "a\x00b", "😀", "名前", " ", "a b", "\n", "\u2028", "`", "%", "_", "--"]  # fmt: skip


def _rules(name: str) -> dict[str, dict[str, Any]]:
    rules = {
        "trait": {"trait": name, "op": "eq", "value": "v"},
        "trait-contains": {"trait": name, "op": "contains", "value": "v"},
        "did-event": {"did": name},
        "did-where": {"did": "buy", "where": {name: "v"}},
        "did-channel": {"did": "buy", "store_id": name},
    }
    if "." not in name:  # a dot in a user data field is a step into an object
        rules["last"] = {"last": "buy", "property": name, "op": "eq", "value": "v"}
        rules["data"] = {"data": f"buy.{name}", "stat": "most_frequent", "op": "eq", "value": "v"}
        rules["data-count"] = {"data": f"buy.{name}", "stat": "count", "op": "gte", "value": 1}
    return rules


def _events(name: str) -> list[Event]:
    props = json.dumps({name: "v"}).encode()
    return [
        Event("m1", "identify", None, "U1", None, NOW - 3000, NOW, "web", None, b"{}", {name: "v"}, b"{}"),
        Event("m2", "track", "buy", "U1", None, NOW - 2000, NOW, "store", name, props, {}, b"{}"),
        Event("m3", "track", name, "U1", None, NOW - 1000, NOW, "web", None, b"{}", {}, b"{}"),
        Event("m4", "track", "buy", "U2", None, NOW - 1000, NOW, "web", None, b'{"other": "v"}', {}, b"{}"),
    ]


def _sql_members(con: duckdb.DuckDBPyConnection, rule: Any) -> set[str]:
    sql = compile_segment(rule, today=day_of(NOW, ZoneInfo(TZ)), timezone=TZ)
    return {row[0] for row in con.execute(sql).fetchall()}


@pytest.mark.parametrize("name", NAMES, ids=[repr(n) for n in NAMES])
def test_a_rule_naming_an_awkward_name_finds_the_same_person_streaming_and_in_sql(name: str) -> None:
    for what, rule_json in _rules(name).items():
        rule = parse_rule(rule_json)
        engine = Engine()
        engine.set_segments([Segment("s", rule)])
        events = _events(name)
        pids = engine.apply(events).person_ids
        today = day_of(NOW, ZoneInfo(TZ))
        one = engine.lookup("user_id", "U1")
        assert one is not None
        streaming = {p.person_id for p in engine.persons.values() if evaluate(rule, engine.live.facts(p, today), today)}
        assert streaming == {one.person_id}, what
        assert _sql_members(analytics_store(engine, events, pids), rule) == streaming, what
        for dialect in DIALECTS:
            assert compile_segment(rule, today=today, timezone=TZ, dialect=dialect)


@pytest.mark.parametrize("name", NAMES, ids=[repr(n) for n in NAMES])
def test_a_back_fill_reads_an_awkward_property_or_event_name(name: str) -> None:
    events = _events(name)
    engine = Engine()
    pids = engine.apply(events).person_ids
    con = analytics_store(engine, events, pids)
    one = engine.lookup("user_id", "U1")
    assert one is not None
    counter = {"event": "buy", "channel": None, "store_id": name, "where": {name: "v"}}
    assert [r[0] for r in run_backfill(con, "counter", "k", counter, upto_seq=9, timezone=TZ)] == [one.person_id]
    named = {"event": name, "channel": None, "store_id": None, "where": {}}
    assert [r[0] for r in run_backfill(con, "counter", "k", named, upto_seq=9, timezone=TZ)] == [one.person_id]
    if "." not in name:  # a dot in a property path is a step into an object
        trait = {"event": "buy", "agg": "last", "property": name}
        rows = run_backfill(con, "computed", "t", trait, upto_seq=9, timezone=TZ)
        assert [r[0] for r in rows] == [one.person_id]
