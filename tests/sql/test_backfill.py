"""Back-fill: the history counted by SQL equals the history counted live.

Engine A has a computed trait (or a counter) from its first log record and counts every
event live. Engine B gets the same definition part-way through the log: the events
before it are counted by the back-fill SQL over the analytics store (paged by person,
applied as rows), the ones after it live. Both must end with the same values, for every
person, merges included (back-fill rows name the person an event arrived with).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tsunagu.core import userdata
from tsunagu.core.engine import Engine
from tsunagu.core.events import Event
from tsunagu.core.segments import Did, parse_rule
from tsunagu.sql.backfill import (
    backfill_page,
    backfill_persons,
    backfill_table,
    drop_backfill,
    prepare_backfill,
    run_backfill,
)

from .history import NOW, TZ, analytics_store, histories
from .test_rule_nodes import TODAY, aggregates
from .test_segments import leaf_did


def _ready(engine: Engine) -> None:
    for backfill in list(engine.live.backfills):  # nothing before them: empty back-fills
        engine.apply_backfill(backfill, [], "", True, NOW)


def _backfilled(events: list[Event], split: int, kind: str, name: str, body: dict[str, Any], limit: int) -> Engine:
    """Engine B: `events[:split]`, the definition, the rest; the back-fill paged `limit` persons at a time."""
    engine = Engine()
    pids = engine.apply(events[:split]).person_ids
    engine.define(kind, name, body, seq=split + 1, now=NOW)
    pids += engine.apply(events[split:]).person_ids
    seqs = [*range(1, split + 1), *range(split + 2, len(events) + 2)]
    con = analytics_store(engine, events, pids, seqs)
    assert backfill_persons(con, split + 1) == sorted(set(pids[:split]))
    for backfill in list(engine.live.backfills.values()):
        done = False
        while not done:
            rows, cursor, done = backfill_page(con, backfill, timezone=TZ, limit=limit)
            engine.apply_backfill(backfill.id, rows, cursor, done, NOW)
    assert not engine.live.backfills
    return engine


def _all_time(engine: Engine, name: str) -> dict[str, Any]:
    return {
        pid: userdata.window_stats(p.computed.get(name), "all_time", TODAY, p.session_no)
        for pid, p in engine.persons.items()
    }


@settings(max_examples=250, deadline=None)
@given(data=st.data(), events=histories(anonymous=True), body=aggregates(), limit=st.sampled_from([1, 3, 10_000]))
def test_a_computed_trait_back_filled_by_sql_equals_one_counted_live(
    data: st.DataObject, events: list[Event], body: dict[str, Any], limit: int
) -> None:
    live = Engine()
    live.define("computed_trait", "t", body, seq=1, now=NOW)
    _ready(live)
    live.apply(events)
    split = data.draw(st.integers(0, len(events)))
    backfilled = _backfilled(events, split, "computed_trait", "t", body, limit)
    context = json.dumps(body)
    assert backfilled.persons.keys() == live.persons.keys()
    for pid, p in live.persons.items():
        assert backfilled.live.computed_values(backfilled.persons[pid], NOW) == live.live.computed_values(p, NOW), (
            context
        )
    assert _all_time(backfilled, "t") == _all_time(live, "t"), context


@settings(max_examples=250, deadline=None)
@given(data=st.data(), events=histories(anonymous=True), did=leaf_did(), limit=st.sampled_from([1, 3, 10_000]))
def test_a_counter_back_filled_by_sql_equals_one_counted_live(
    data: st.DataObject, events: list[Event], did: dict[str, Any], limit: int
) -> None:
    rule = parse_rule(did)
    assert isinstance(rule, Did)
    live = Engine()
    live.define("segment", "s", {"rule": did}, seq=1, now=NOW)
    _ready(live)
    live.apply(events)
    split = data.draw(st.integers(0, len(events)))
    backfilled = _backfilled(events, split, "segment", "s", {"rule": did}, limit)
    for pid, p in live.persons.items():
        other = backfilled.persons[pid]
        assert other.counters.get(rule.key, {}) == p.counters.get(rule.key, {}), json.dumps(did)
        assert other.segments == p.segments, json.dumps(did)


def test_back_fill_rows_name_the_person_an_event_arrived_with_and_stop_at_the_seq() -> None:
    events = [
        Event("m1", "track", "buy", None, "a1", NOW - 3_600_000, NOW, "web", None, b'{"price": 3}', {}, b"{}"),
        Event("m2", "track", "buy", "U1", None, NOW - 60_000, NOW, "web", None, b'{"price": 4.5}', {}, b"{}"),
        Event("m3", "identify", None, "U1", "a1", NOW, NOW, "web", None, b"{}", {}, b"{}"),  # merges the two
        Event("m4", "track", "buy", "U1", None, NOW, NOW, "web", None, b'{"price": 100}', {}, b"{}"),
    ]
    engine = Engine()
    pids = engine.apply(events).person_ids
    assert pids[0] != pids[1] and len(engine.persons) == 1
    con = analytics_store(engine, events, pids)
    spec = {"event": "buy", "channel": None, "store_id": None, "where": {}}
    rows = run_backfill(con, "counter", "k", spec, upto_seq=4, timezone=TZ)
    assert sorted(rows) == sorted([(pids[0], TODAY, 1), (pids[1], TODAY, 1)])
    trait = {"event": "buy", "agg": "sum", "property": "price"}
    (row,) = [r for r in run_backfill(con, "computed", "t", trait, upto_seq=4, timezone=TZ) if r[0] == pids[1]]
    stats = row[2]
    assert stats[userdata.N] == 1 and stats[userdata.SUM] == 4.5 and stats[userdata.FIRST_V] == 4.5
    assert stats[userdata.FIRST_MID] == "m2" and stats[userdata.FIRST_TS] == NOW - 60_000
    assert backfill_persons(con, 4) == sorted({pids[0], pids[1]})


def test_a_back_fill_is_grouped_once_into_a_table_its_pages_read_and_finishing_drops() -> None:
    events = [
        Event(f"m{i}", "track", "buy", f"U{i % 3}", None, NOW - i * 60_000, NOW, "web", None, b'{"price": 2}', {},
              b"{}")
        for i in range(9)
    ]  # fmt: skip
    engine = Engine()
    pids = engine.apply(events).person_ids
    engine.define("computed_trait", "t", {"event": "buy", "agg": "sum", "property": "price"}, seq=10, now=NOW)
    con = analytics_store(engine, events, pids)
    (backfill,) = engine.live.backfills.values()
    table = prepare_backfill(con, backfill, timezone=TZ)
    assert table == backfill_table(backfill, TZ) and table.startswith("backfill_")
    con.execute("DELETE FROM events")  # pages read the table, not the events
    rows, cursor, done = backfill_page(con, backfill, timezone=TZ, limit=2)
    assert len({r[0] for r in rows}) == 2 and cursor == max(r[0] for r in rows) and not done
    backfill.cursor = cursor
    rows, cursor, done = backfill_page(con, backfill, timezone=TZ, limit=2)
    assert len({r[0] for r in rows}) == 1 and done
    drop_backfill(con, backfill)
    assert not con.execute("SELECT * FROM duckdb_tables() WHERE table_name = ?", [table]).fetchall()
