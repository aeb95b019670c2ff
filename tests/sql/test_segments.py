"""One segment definition, two evaluators: streaming (per event) and bulk (SQL on DuckDB).

Hypothesis generates histories and rules and checks that both give the same members at
the same instant.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsunagu.core.effects import SegmentEntered, SegmentExited
from tsunagu.core.engine import Engine
from tsunagu.core.errors import InvalidInput
from tsunagu.core.events import Event
from tsunagu.core.segments import Segment, day_of, evaluate, parse_rule
from tsunagu.sql.segments import DIALECTS, compile_segment

TZ = "Asia/Tokyo"
NOW = int(datetime(2026, 11, 20, 12, 0, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)
DAY = 86_400_000

leaf_trait = st.one_of(
    st.builds(lambda v: {"trait": "rank", "op": "eq", "value": v}, st.sampled_from(["gold", "silver"])),
    st.builds(lambda v: {"trait": "rank", "op": "neq", "value": v}, st.sampled_from(["gold", "silver"])),
    st.just({"trait": "rank", "op": "in", "value": ["gold", "platinum"]}),
    st.just({"trait": "rank", "op": "exists"}),
    st.builds(lambda n: {"trait": "points", "op": "gte", "value": n}, st.integers(0, 300)),
    st.builds(lambda n: {"trait": "points", "op": "lt", "value": n}, st.integers(0, 300)),
)


@st.composite
def leaf_did(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {"did": draw(st.sampled_from(["view", "cart", "buy", "$page"]))}
    if draw(st.booleans()):
        rule["channel"] = draw(st.sampled_from(["web", "store"]))
    if draw(st.booleans()):
        key = "path" if rule["did"] == "$page" and draw(st.booleans()) else "category"
        rule["where"] = {key: draw(st.sampled_from(["outer", "tops"] if key == "category" else ["/", "/sale"]))}
    if window := draw(st.sampled_from([None, 1, 3, 7, 30])):
        rule["within_days"] = window
    rule["count"] = {"op": draw(st.sampled_from(["gte", "eq", "lt"])), "value": draw(st.integers(0, 3))}
    return rule


rules = st.recursive(
    st.one_of(leaf_trait, leaf_did()),
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=5,
)


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    events = []
    for i in range(draw(st.integers(1, 25))):
        k = draw(st.integers(0, 4))
        ts = NOW - draw(st.integers(0, 12 * DAY))
        if draw(st.integers(0, 4)) == 0:
            traits: dict[str, Any] = {"rank": draw(st.sampled_from(["gold", "silver", "regular"]))}
            if draw(st.booleans()):
                traits["points"] = draw(st.integers(0, 300))
            events.append(Event(f"m{i}", "identify", None, f"U{k}", None, ts, NOW, "web", None, b"{}", traits, b"{}"))
        elif draw(st.integers(0, 3)) == 0:  # a page view (`$page` in rules), on the web or in a store's kiosk
            channel = draw(st.sampled_from(["web", "web", "store"]))
            props = json.dumps({"path": draw(st.sampled_from(["/", "/sale"]))}).encode()
            events.append(Event(f"m{i}", "page", "Home", f"U{k}", None, ts, NOW, channel, None, props, {}, b"{}"))
        else:
            name = draw(st.sampled_from(["view", "cart", "buy", "checkin"]))
            channel = draw(st.sampled_from(["web", "store"]))
            props = json.dumps({"category": draw(st.sampled_from(["outer", "tops"]))}).encode()
            events.append(Event(f"m{i}", "track", name, f"U{k}", None, ts, NOW, channel, None, props, {}, b"{}"))
    return events


def _sql_members(engine: Engine, events: list[Event], pids: list[str], rule: Any) -> set[str]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE people (person_id VARCHAR, traits JSON)")
    con.execute(
        "CREATE TABLE person_events (canonical_person_id VARCHAR, type VARCHAR, event VARCHAR, channel VARCHAR,"
        " store_id VARCHAR, timestamp TIMESTAMPTZ, properties JSON)"
    )
    con.executemany(
        "INSERT INTO people VALUES (?, ?)",
        [(p.person_id, json.dumps(p.traits)) for p in engine.persons.values()],
    )
    con.executemany(
        "INSERT INTO person_events VALUES (?, ?, ?, ?, ?, make_timestamptz(? * 1000), ?)",
        [
            (engine.canonical(pid), e.type, e.event, e.channel, e.store_id, e.timestamp, e.properties.decode())
            for e, pid in zip(events, pids, strict=True)
        ],
    )
    sql = compile_segment(rule, today=day_of(NOW, ZoneInfo(TZ)), timezone=TZ)
    return {row[0] for row in con.execute(sql).fetchall()}


@settings(max_examples=300, deadline=None)
@given(data=st.data(), events=histories(), rule_json=rules)
def test_streaming_and_sql_give_the_same_members_at_the_same_instant(
    data: st.DataObject, events: list[Event], rule_json: dict[str, Any]
) -> None:
    rule = parse_rule(rule_json)
    engine = Engine()
    engine.set_segments([Segment("s", rule)])
    order = data.draw(st.permutations(events))
    pids = engine.apply(order).person_ids
    today = day_of(NOW, ZoneInfo(TZ))
    streaming = {p.person_id for p in engine.persons.values() if evaluate(rule, engine.live.facts(p, today), today)}
    assert streaming == _sql_members(engine, order, pids, rule), json.dumps(rule_json, ensure_ascii=False)
    # membership kept on the way (entered/left on events) agrees with a fresh evaluation
    assert {p.person_id for p in engine.persons.values() if "s" in p.segments} == streaming


def test_entering_and_leaving_are_on_the_timeline() -> None:
    engine = Engine()
    engine.set_segments(
        [Segment("store-twice", parse_rule({"did": "buy", "channel": "store", "count": {"op": "gte", "value": 2}}))]
    )
    buy = lambda i: Event(f"b{i}", "track", "buy", "U1", None, NOW - i, NOW, "store", None, b"{}", {}, b"{}")  # noqa: E731
    assert not [e for e in engine.apply([buy(1)]).effects if isinstance(e, (SegmentEntered, SegmentExited))]
    entered = [e for e in engine.apply([buy(2)]).effects if isinstance(e, SegmentEntered)]
    assert entered and entered[0].segment == "store-twice" and entered[0].message_id == "b2"
    assert engine.lookup("user_id", "U1").segments == ["store-twice"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"did": "buy", "within_days": 0}, "rule.within_days"),
        ({"all": []}, "rule.all"),
        ({"all": [{"trait": "rank", "op": "like", "value": 1}]}, "rule.all[0].op"),
        ({"any": [{"did": "buy"}, {"did": "buy", "count": {"op": "gte", "value": -1}}]}, "rule.any[1].count.value"),
        ({"not": {"tait": "x"}}, "rule.not"),
        ({"trait": "points", "op": "gte", "value": "ten"}, "rule.value"),
    ],
)
def test_an_invalid_rule_is_refused_with_the_exact_path(rule: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_rule(rule)
    assert err.value.errors[0].field == field


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_rule_compiles_for_every_dialect(dialect: str) -> None:
    twice = {"op": "gte", "value": 2}
    rule = parse_rule({"all": [{"trait": "member_rank", "op": "eq", "value": "ゴールド"},
                               {"did": "buy", "channel": "store", "within_days": 90, "count": twice},
                               {"not": {"did": "buy", "channel": "web", "within_days": 90}}]})  # fmt: skip
    sql = compile_segment(rule, today=20_000, timezone=TZ, dialect=dialect)
    assert "person_events" in sql and "ゴールド" in sql


@pytest.mark.parametrize("within_days", [1, 2, 7])
@pytest.mark.parametrize("offset_days", [0, 1, 2, 6, 7, 8])
@pytest.mark.parametrize("clock", ["00:00", "23:59"])
def test_windows_are_calendar_days_in_the_workspace_zone_both_ways(
    within_days: int, offset_days: int, clock: str
) -> None:
    zone = ZoneInfo(TZ)
    hour, minute = map(int, clock.split(":"))
    day = datetime.fromtimestamp(NOW / 1000, zone).replace(hour=hour, minute=minute)
    ts = int(day.timestamp() * 1000) - offset_days * DAY
    ts = min(ts, NOW)
    rule = parse_rule({"did": "buy", "within_days": within_days})
    ev = Event("m1", "track", "buy", "U1", None, ts, NOW, "web", None, b"{}", {}, b"{}")
    engine = Engine()
    engine.set_segments([Segment("s", rule)])
    pids = engine.apply([ev]).person_ids
    expected = offset_days < within_days  # today counts as the first day of the window
    streaming = {p.person_id for p in engine.persons.values() if "s" in p.segments}
    assert (len(streaming) == 1) is expected
    assert _sql_members(engine, [ev], pids, rule) == streaming


def test_page_and_screen_views_are_dollar_page_and_dollar_screen_both_ways() -> None:
    """`$page` counts page views whatever the page's name; a track event calling itself `$page` or
    `page` is no view, and `*` in a computed trait is any track event, not a view."""
    ev = lambda i, typ, name, uid: Event(f"v{i}", typ, name, uid, None, NOW - i, NOW, "web", None,  # noqa: E731
                                         b'{"path": "/sale"}', {}, b"{}")  # fmt: skip
    events = [ev(1, "page", "Home", "U1"), ev(2, "page", None, "U1"), ev(3, "screen", "Top", "U2"),
              ev(4, "track", "$page", "U3"), ev(5, "track", "page", "U4")]  # fmt: skip
    cases = [
        ({"did": "$page", "count": {"op": "eq", "value": 2}}, {"U1"}),
        ({"did": "$page", "where": {"path": "/sale"}}, {"U1"}),
        ({"did": "$screen"}, {"U2"}),
        ({"did": "page"}, {"U4"}),  # the track event of that name, not page views
        ({"first_did": "$page", "within_days": 1}, {"U1"}),
    ]
    for rule_json, members in cases:
        rule = parse_rule(rule_json)
        engine = Engine()
        engine.define("computed_trait", "tracked", {"event": "*", "agg": "count"}, seq=1, now=NOW)
        engine.define("computed_trait", "views", {"event": "$page", "agg": "count"}, seq=1, now=NOW)
        engine.set_segments([Segment("s", rule)])
        pids = engine.apply(events).person_ids
        today = day_of(NOW, ZoneInfo(TZ))
        streaming = {p.person_id for p in engine.persons.values() if evaluate(rule, engine.live.facts(p, today), today)}
        uid = {p.person_id: p.identifiers["user_id"][0] for p in engine.persons.values()}
        assert {uid[p] for p in streaming} == members, rule_json
        assert _sql_members(engine, events, pids, rule) == streaming, rule_json
        values = {uid[p.person_id]: engine.live.computed_values(p, NOW) for p in engine.persons.values()}
        assert {u: (v["tracked"], v["views"]) for u, v in values.items()} == {
            "U1": (0, 2), "U2": (0, 0), "U3": (1, 0), "U4": (1, 0)}  # fmt: skip
