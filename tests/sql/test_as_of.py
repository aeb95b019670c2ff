"""The SQL evaluator as of a past day sees only what had happened by the end of that day.

A segment's history is reconstructed this way (`tsunagu.history`): the members at the
end of day D, from a store that holds everything up to now. Hypothesis draws a history
(~70 days), a day D and a rule; the members the SQL finds as of D must be the members
the streaming engine finds at D when it was given only the events up to the end of D.

Traits too: a trait as of D is what the identify events up to then made it (the latest
write by time and message id wins, `$unset` and `$set_once` included).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsunagu.core.engine import Engine
from tsunagu.core.events import Event
from tsunagu.core.segments import Rule, Segment, evaluate, parse_rule
from tsunagu.sql._rows import day_start
from tsunagu.sql.segments import compile_segment

from .history import DAY, NOW, TZ, analytics_store, histories, in_time_order
from .test_rule_nodes import TODAY, _tree, aggregates, leaf_computed, leaf_data, leaf_did_since, leaf_first_did
from .test_segments import leaf_did, leaf_trait

leaves = st.one_of(leaf_trait, leaf_did(), leaf_data(), leaf_first_did(), leaf_did_since(), leaf_computed())
case_rules = _tree(st.one_of(leaf_trait, leaf_did(), leaf_data(), leaf_first_did(), leaf_did_since()))


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    values = st.sampled_from(["vip", "web", 1, 2.5, True, None])
    whens = draw(st.lists(case_rules, min_size=1, max_size=2))
    return {"cases": [{"when": w, "value": draw(values)} for w in whens], "else": draw(values)}


def _engine(events: list[Event], agg: dict[str, Any], cases_: dict[str, Any], rule: Rule, now: int) -> Engine:
    engine = Engine()
    engine.define("computed_trait", "agg", agg, seq=1, now=now)
    engine.define("computed_trait", "cases", cases_, seq=1, now=now)
    for backfill in list(engine.live.backfills):  # nothing before them: empty back-fills
        engine.apply_backfill(backfill, [], "", True, now)
    engine.set_segments([Segment("s", rule)], now)  # its counters are kept from the first event
    engine.apply(events)
    return engine


def _user(engine: Engine, pid: str) -> str:
    return engine.persons[pid].identifiers["user_id"][0]


def _check(events: list[Event], rule_json: dict[str, Any], day: int) -> None:
    """The SQL as of `day` over every event equals the engine given the events up to its end."""
    end = int(day_start(day + 1, TZ)[0].timestamp() * 1000)
    agg, cases_ = {"event": "buy", "agg": "count"}, {"cases": [{"when": {"did": "buy"}, "value": 1}], "else": 0}
    rule = parse_rule(rule_json)
    order = in_time_order(events)
    full = _engine([], agg, cases_, rule, end)
    con = analytics_store(full, order, full.apply(order).person_ids)
    for p in full.persons.values():
        con.execute("UPDATE people SET first_seen = make_timestamptz(? * 1000) WHERE person_id = ?",
                    [p.first_seen, p.person_id])  # fmt: skip
    sql = compile_segment(rule, today=day, timezone=TZ, computed=full.live.computed, as_of=True)
    got = {_user(full, r[0]) for r in con.execute(sql).fetchall()}
    upto = _engine([e for e in order if e.timestamp < end], agg, cases_, rule, end)
    want = {_user(upto, p.person_id) for p in upto.persons.values() if evaluate(rule, upto.live.facts(p, day), day)}
    assert got == want, (rule_json, TODAY - day)


def _identify(mid: str, uid: str, days_ago: int, traits: dict[str, Any]) -> Event:
    ts = NOW - days_ago * DAY
    return Event(mid, "identify", None, uid, None, ts, NOW, "web", None, b"{}", traits, b"{}")


UNSET_AND_ONCE = [
    _identify("m1", "U1", 6, {"rank": "gold", "$set_once": {"tier": "b"}}),
    _identify("m2", "U1", 5, {"$set_once": {"tier": "a"}}),  # later: set once keeps "b"
    _identify("m3", "U1", 3, {"$unset": ["rank"]}),
    _identify("m4", "U1", 1, {"rank": "silver", "tier": "c"}),  # a plain write beats set once
    _identify("m5", "U2", 4, {"$set_once": {"tier": "a"}, "rank": "gold"}),
    _identify("m6", "U2", 2, {"$unset": "rank"}),
]


@pytest.mark.parametrize("back", [7, 6, 5, 4, 3, 2, 1, 0])
@pytest.mark.parametrize("rule_json", [
    {"trait": "rank", "op": "exists"}, {"trait": "rank", "op": "eq", "value": "gold"},
    {"trait": "tier", "op": "eq", "value": "a"}, {"trait": "tier", "op": "eq", "value": "b"},
    {"trait": "tier", "op": "not_exists"},
])  # fmt: skip
def test_unset_and_set_once_as_of_a_past_day(back: int, rule_json: dict[str, Any]) -> None:
    _check(UNSET_AND_ONCE, rule_json, TODAY - back)


@settings(max_examples=200, deadline=None)
@given(events=histories(max_events=40), back=st.integers(0, 72), agg=aggregates(), cases_=cases(),
       rule_json=_tree(leaves))  # fmt: skip
def test_members_as_of_a_past_day_are_those_of_the_events_up_to_its_end(
    events: list[Event], back: int, agg: dict[str, Any], cases_: dict[str, Any], rule_json: dict[str, Any]
) -> None:
    day = TODAY - back
    end = int(day_start(day + 1, TZ)[0].timestamp() * 1000)
    order = in_time_order(events)
    rule = parse_rule(rule_json)
    full = _engine([], agg, cases_, rule, end)
    pids = full.apply(order).person_ids
    con = analytics_store(full, order, pids)
    for p in full.persons.values():  # the people table's first_seen, as the pipeline writes it
        con.execute("UPDATE people SET first_seen = make_timestamptz(? * 1000) WHERE person_id = ?",
                    [p.first_seen, p.person_id])  # fmt: skip
    sql = compile_segment(rule, today=day, timezone=TZ, computed=full.live.computed, as_of=True)
    got = {_user(full, r[0]) for r in con.execute(sql).fetchall()}

    upto = _engine([e for e in order if e.timestamp < end], agg, cases_, rule, end)
    want = {_user(upto, p.person_id) for p in upto.persons.values() if evaluate(rule, upto.live.facts(p, day), day)}
    context = json.dumps({"rule": rule_json, "day": back, "agg": agg, "cases": cases_}, ensure_ascii=False)
    assert got == want, context
