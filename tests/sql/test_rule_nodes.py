"""The newer rule nodes, both ways: user data (`data`), `first_did`, `did ... since`,
computed traits (`computed`: aggregates and cases) and segment references (`segment`).

Hypothesis draws a history, a computed aggregate, a cases trait, a base segment and a
rule over all of them; the streaming engine (events applied in time order, definitions
registered first) and the SQL on DuckDB must give the same members, and the same
computed values, at the same instant.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsunagu.core import userdata
from tsunagu.core.computed import AGGS, COMPUTED_WINDOWS
from tsunagu.core.effects import SegmentEntered
from tsunagu.core.engine import Engine
from tsunagu.core.events import Event
from tsunagu.core.segments import COMPARISONS, Segment, _text, day_of, evaluate, parse_rule
from tsunagu.sql.segments import DIALECTS, compile_segment, computed_query

from .history import NOW, TZ, analytics_store, histories, in_time_order
from .test_segments import leaf_did, leaf_trait

TODAY = day_of(NOW, ZoneInfo(TZ))
FIELDS = [
    "buy", "view", "cart", "$page", "$sessions", "buy.price", "view.category", "cart.member", "buy.size.cm",
    "view.size.label", "$page.path", "buy.items", "buy.size", "view.tags", "nothing.here",
]  # fmt: skip
_VALUES = ["outer", "tops", "/sale", "S", 0, 1, 2, 3, 10, 25, 2.5, True, False]


@st.composite
def comparison(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(COMPARISONS))
    if op in ("exists", "not_exists"):
        return {"op": op}
    if op in ("gt", "gte", "lt", "lte"):
        return {"op": op, "value": draw(st.sampled_from([0, 1, 2, 3, 5, 10, 25, 40, 2.5, 60]))}
    if op == "in":
        return {"op": op, "value": draw(st.lists(st.sampled_from(_VALUES), min_size=1, max_size=3))}
    return {"op": op, "value": draw(st.sampled_from(_VALUES))}


@st.composite
def leaf_data(draw: st.DrawFn) -> dict[str, Any]:
    rule = {"data": draw(st.sampled_from(FIELDS)), "stat": draw(st.sampled_from(userdata.STATS)),
            "window": draw(st.sampled_from(userdata.WINDOWS))}  # fmt: skip
    return rule | draw(comparison())


@st.composite
def leaf_first_did(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {"first_did": draw(st.sampled_from(["view", "cart", "buy", "$page"]))}
    if draw(st.booleans()):
        rule["channel"] = draw(st.sampled_from(["web", "store"]))
    if draw(st.integers(0, 3)) == 0:
        rule["where"] = draw(st.sampled_from([{"member": True}, {"price": 10}, {"category": "tops"}]))
    rule["within_days"] = draw(st.sampled_from([1, 2, 7, 30, 60]))
    return rule


@st.composite
def leaf_did_since(draw: st.DrawFn) -> dict[str, Any]:
    since = date(1970, 1, 1) + timedelta(days=TODAY - draw(st.integers(-1, 72)))
    rule = {"did": draw(st.sampled_from(["view", "cart", "buy"])), "since": since.isoformat()}
    if draw(st.booleans()):
        rule["where"] = draw(st.sampled_from([{"member": False}, {"price": 1}, {"category": "outer"}]))
    rule["count"] = {"op": draw(st.sampled_from(["gte", "eq", "lt"])), "value": draw(st.integers(0, 3))}
    return rule


@st.composite
def leaf_computed(draw: st.DrawFn) -> dict[str, Any]:
    return {"computed": draw(st.sampled_from(["agg", "cases"]))} | draw(comparison())


def _tree(leaves: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda x: {"not": x}, inner),
        ),
        max_leaves=4,
    )


plain_leaves = st.one_of(leaf_trait, leaf_did(), leaf_data(), leaf_first_did(), leaf_did_since())
case_rules = _tree(plain_leaves)
base_rules = _tree(st.one_of(plain_leaves, leaf_computed()))
rules = _tree(st.one_of(plain_leaves, leaf_data(), leaf_computed(), st.just({"segment": "base"})))


@st.composite
def aggregates(draw: st.DrawFn) -> dict[str, Any]:
    agg = draw(st.sampled_from(AGGS))
    body: dict[str, Any] = {"event": draw(st.sampled_from(["buy", "view", "*", "$page"])), "agg": agg}
    numbers, strings = ["price", "size.cm"], ["category", "items.category", "$channel", "$store_id", "tags", "path"]
    fitting = numbers if agg in ("sum", "min", "max", "avg") else strings if agg != "count" else [None]
    anything = [None, *numbers, *strings, "member", "size", "items", "nothing.here"]
    prop = draw(st.one_of(st.sampled_from(fitting), st.sampled_from(anything)))
    if prop is None and agg not in ("count", "days_since_first", "days_since_last"):
        prop = "price"
    if prop is not None:
        body["property"] = prop
    if draw(st.integers(0, 2)) == 0:
        body["channel"] = draw(st.sampled_from(["web", "web,app", "store"]))
    if draw(st.integers(0, 5)) == 0:
        body["store_id"] = "S1"
    if draw(st.integers(0, 4)) == 0:
        body["where"] = draw(st.sampled_from([{"member": True}, {"category": "tops"}, {"price": 10}]))
    window = draw(st.one_of(st.just("all_time"), st.sampled_from([*COMPUTED_WINDOWS, 3, 30, 70])))
    body |= {"within_days": window} if isinstance(window, int) else {"window": window}
    return body


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    values = st.sampled_from(["vip", "web", 1, 2.5, 3.0, True, None])
    whens = draw(st.lists(case_rules, min_size=1, max_size=3))
    return {"cases": [{"when": w, "value": draw(values)} for w in whens], "else": draw(values)}


def _streaming(events: list[Event], agg: dict[str, Any], cases_: dict[str, Any], segments: list[Segment]) -> Engine:
    engine = Engine()
    engine.define("computed_trait", "agg", agg, seq=1, now=NOW)
    engine.define("computed_trait", "cases", cases_, seq=1, now=NOW)
    for backfill in list(engine.live.backfills):  # nothing before them: empty back-fills
        engine.apply_backfill(backfill, [], "", True, NOW)
    engine.set_segments(segments, NOW)
    return engine


def _norm(value: Any) -> str | None:
    return None if value is None else _text(value)


@settings(max_examples=300, deadline=None)
@given(events=histories(), agg=aggregates(), cases_=cases(), base_json=base_rules, rule_json=rules)
def test_new_rule_nodes_give_the_same_members_both_ways(
    events: list[Event], agg: dict[str, Any], cases_: dict[str, Any], base_json: dict[str, Any],
    rule_json: dict[str, Any],
) -> None:  # fmt: skip
    base, rule = parse_rule(base_json), parse_rule(rule_json)
    order = in_time_order(events)
    engine = _streaming(order, agg, cases_, [Segment("base", base), Segment("s", rule)])
    pids = engine.apply(order).person_ids
    streaming = {p.person_id for p in engine.persons.values() if evaluate(rule, engine.live.facts(p, TODAY), TODAY)}
    con = analytics_store(engine, order, pids)
    sql = compile_segment(rule, today=TODAY, timezone=TZ, computed=engine.live.computed, segments={"base": base})
    context = json.dumps({"rule": rule_json, "base": base_json, "agg": agg, "cases": cases_}, ensure_ascii=False)
    assert streaming == {r[0] for r in con.execute(sql).fetchall()}, context
    # membership kept on the way (entered and left on events) agrees with a fresh evaluation
    assert {p.person_id for p in engine.persons.values() if "s" in p.segments} == streaming, context
    for name in ("agg", "cases"):
        query = computed_query(engine.live.computed[name], today=TODAY, timezone=TZ, computed=engine.live.computed)
        got = {pid: _norm(v) for pid, v in con.execute(query.sql(dialect="duckdb")).fetchall()}
        want = {p.person_id: _norm(engine.live.computed_values(p, NOW)[name]) for p in engine.persons.values()}
        assert got == want, f"{name}: {context}"


# -- window edges at midnight in the workspace's zone ------------------------------------------


def _at(day: str, clock: str) -> int:
    return int(datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=ZoneInfo(TZ)).timestamp() * 1000)


@pytest.mark.parametrize(
    ("window", "now", "event", "inside"),
    [
        # 2026-11-16 is a Monday: this week starts at its midnight, last week ends there
        ("this_week", "2026-11-16T00:00:00", "2026-11-16T00:00:00", True),
        ("this_week", "2026-11-16T00:00:00", "2026-11-15T23:59:59", False),
        ("this_week", "2026-11-22T23:59:59", "2026-11-16T00:00:00", True),
        ("this_week", "2026-11-23T00:00:00", "2026-11-22T23:59:59", False),
        ("last_week", "2026-11-16T00:00:00", "2026-11-15T23:59:59", True),
        ("last_week", "2026-11-16T00:00:00", "2026-11-09T00:00:00", True),
        ("last_week", "2026-11-16T00:00:00", "2026-11-08T23:59:59", False),
        ("last_week", "2026-11-15T23:59:59", "2026-11-15T00:00:00", False),
        # months: October has 31 days; the first of the month starts a new one
        ("last_month", "2026-11-01T00:00:00", "2026-10-31T23:59:59", True),
        ("last_month", "2026-11-01T00:00:00", "2026-10-01T00:00:00", True),
        ("last_month", "2026-11-01T00:00:00", "2026-09-30T23:59:59", False),
        ("last_month", "2026-10-31T23:59:59", "2026-10-01T00:00:00", False),
        ("last_month", "2026-03-01T00:00:00", "2026-02-01T00:00:00", True),
        ("this_month", "2026-11-01T00:00:00", "2026-10-31T23:59:59", False),
        ("this_month", "2026-11-30T23:59:59", "2026-11-01T00:00:00", True),
        ("yesterday", "2026-11-16T00:00:00", "2026-11-15T00:00:00", True),
        ("yesterday", "2026-11-16T00:00:00", "2026-11-16T00:00:00", False),
        ("today", "2026-11-16T23:59:59", "2026-11-16T00:00:00", True),
        ("last_7_days", "2026-11-16T00:00:00", "2026-11-10T00:00:00", True),
        ("last_7_days", "2026-11-16T00:00:00", "2026-11-09T23:59:59", False),
        ("last_28_days", "2026-11-16T00:00:00", "2026-10-20T00:00:00", True),
        ("last_28_days", "2026-11-16T00:00:00", "2026-10-19T23:59:59", False),
    ],
)
def test_calendar_windows_turn_at_midnight_in_the_workspace_zone_both_ways(
    window: str, now: str, event: str, inside: bool
) -> None:
    now_ms, ts = _at(*now.split("T")), _at(*event.split("T"))
    today = day_of(now_ms, ZoneInfo(TZ))
    rule = parse_rule({"data": "buy.price", "stat": "sum", "window": window, "op": "gte", "value": 5})
    ev = Event("m1", "track", "buy", "U1", None, ts, now_ms, "web", None, b'{"price": 5}', {}, b"{}")
    engine = Engine()
    engine.set_segments([Segment("s", rule)], now_ms)
    pids = engine.apply([ev]).person_ids
    streaming = {p.person_id for p in engine.persons.values() if evaluate(rule, engine.live.facts(p, today), today)}
    assert (len(streaming) == 1) is inside
    sql = compile_segment(rule, today=today, timezone=TZ)
    assert {r[0] for r in analytics_store(engine, [ev], pids).execute(sql).fetchall()} == streaming


@pytest.mark.parametrize(("offset_minutes", "same_session"), [(30, True), (31, False)])
def test_a_session_ends_after_thirty_quiet_minutes_both_ways(offset_minutes: int, same_session: bool) -> None:
    first = NOW - 2 * 60 * 60_000
    events = [
        Event("m1", "track", "view", "U1", None, first, NOW, "web", None, b'{"category": "outer"}', {}, b"{}"),
        Event("m2", "page", "Home", "U1", None, first + offset_minutes * 60_000, NOW, "web", None, b"{}", {}, b"{}"),
    ]
    rule = parse_rule({"data": "view", "stat": "count", "window": "this_session", "op": "eq", "value": 1})
    engine = Engine()
    engine.set_segments([Segment("s", rule)])
    pids = engine.apply(events).person_ids
    assert bool(engine.persons[pids[0]].segments) is same_session
    sql = compile_segment(rule, today=TODAY, timezone=TZ)
    assert bool(analytics_store(engine, events, pids).execute(sql).fetchall()) is same_session


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_new_node_compiles_for_every_dialect(dialect: str) -> None:
    engine = Engine()
    favourite = {"event": "buy", "agg": "most_frequent", "property": "items.category", "channel": "web,app"}
    engine.define("computed_trait", "favourite", favourite, 1, NOW)
    engine.define("computed_trait", "class", {"cases": [{"when": {"did": "buy"}, "value": "buyer"}]}, 1, NOW)
    base = parse_rule({"first_did": "buy", "within_days": 7})
    rule = parse_rule({"all": [
        {"data": "$sessions", "stat": "count", "window": "last_7_days", "op": "gte", "value": 2},
        {"data": "buy.price", "stat": "last", "window": "previous_session", "op": "gt", "value": 100},
        {"did": "buy", "since": "2026-01-01"},
        {"computed": "favourite", "op": "eq", "value": "outer"},
        {"computed": "class", "op": "neq", "value": "buyer"},
        {"segment": "base"},
    ]})  # fmt: skip
    sql = compile_segment(rule, today=TODAY, timezone=TZ, dialect=dialect, computed=engine.live.computed,
                          segments={"base": base})  # fmt: skip
    assert "person_events" in sql and "outer" in sql


def test_a_rule_naming_an_unknown_computed_trait_or_segment_is_refused() -> None:
    with pytest.raises(ValueError, match="computed trait 'nope'"):
        compile_segment(parse_rule({"computed": "nope", "op": "exists"}), today=TODAY, timezone=TZ)
    with pytest.raises(ValueError, match="segment 'nope'"):
        compile_segment(parse_rule({"segment": "nope"}), today=TODAY, timezone=TZ)


def test_a_segment_on_an_any_event_aggregate_is_kept_on_every_track_event() -> None:
    engine = Engine()
    engine.define("computed_trait", "events", {"event": "*", "agg": "count"}, 1, NOW)
    for backfill in list(engine.live.backfills):
        engine.apply_backfill(backfill, [], "", True, NOW)
    engine.set_segments([Segment("s", parse_rule({"computed": "events", "op": "gte", "value": 2}))], NOW)
    buy = lambda i: Event(f"m{i}", "track", "buy", "U1", None, NOW - i, NOW, "web", None, b"{}", {}, b"{}")  # noqa: E731
    engine.apply([buy(2)])
    entered = [e for e in engine.apply([buy(1)]).effects if isinstance(e, SegmentEntered)]
    assert entered and engine.lookup("user_id", "U1").segments == ["s"]  # type: ignore[union-attr]
