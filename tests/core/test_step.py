"""The engine's step: it changes only the person; the runtime commits its typed effects."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from tsunagu.core.effects import SegmentEntered, SegmentExited, TimerSet, timeline_entry
from tsunagu.core.engine import Engine
from tsunagu.core.events import Event
from tsunagu.core.live import Live
from tsunagu.core.step import step

NOW = 1_780_000_000_000
DAY = 86_400_000
SEGMENTS = {
    "recent_buyers": {"did": "buy", "within_days": 7},
    "viewers": {"did": "view", "count": {"op": "gte", "value": 2}},
    "gold": {"trait": "rank", "op": "eq", "value": "gold"},
    "gold_buyers": {"all": [{"segment": "gold"}, {"segment": "recent_buyers"}]},
}


def _engine() -> Engine:
    engine = Engine()
    for seq, (name, rule) in enumerate(SEGMENTS.items(), 1):
        engine.define("segment", name, {"rule": rule}, seq=seq, now=NOW)
    return engine


def _catalog(live: Live) -> Any:
    """Everything a step may read but must not change."""
    kept = (live.sizes, live.due, live.next_check, live._edge_checked, live._edge_day, live.touched)
    return copy.deepcopy((*kept, sorted(live.definitions), sorted(live.needs), live.backfills))


def _ev(mid: str, typ: str, name: str | None, ts: int, traits: dict[str, Any] | None = None) -> Event:
    return Event(mid, typ, name, "U1", None, ts, ts, "web", None, b"{}", traits or {}, b"{}")


def test_a_step_decides_entries_and_a_timer_and_changes_nothing_but_the_person() -> None:
    engine = _engine()
    engine.apply([_ev("i", "identify", None, NOW, {"rank": "gold"})])
    p = engine.lookup("user_id", "U1")
    assert p is not None and p.segments == ["gold"]
    before = _catalog(engine.live)
    out: list[Any] = []
    step(_ev("b", "track", "buy", NOW + 1), p, engine.live, NOW + 1, out)
    assert _catalog(engine.live) == before  # read, not written
    assert [(type(e), getattr(e, "segment", None)) for e in out] == [
        (SegmentEntered, "recent_buyers"), (SegmentEntered, "gold_buyers"), (TimerSet, None),
    ]  # fmt: skip
    # the identify computed this person's exact window edge today already (at most one a
    # day): the buy asks for a re-check tomorrow, which finds the exact one
    timer = out[-1]
    assert (timer.day, timer.today, timer.exact) == (engine.live.day_of(NOW) + 1, engine.live.day_of(NOW), False)
    assert p.segments == ["gold", "recent_buyers", "gold_buyers"]
    assert timeline_entry(out[0]) == (p.person_id, "segment_enter", NOW + 1, "b", {"segment": "recent_buyers"})
    engine.live.commit(out)
    assert engine.live.sizes == {"gold": 1, "recent_buyers": 1, "gold_buyers": 1}
    assert engine.live.next_check == {p.person_id: timer.day}


def test_time_passing_is_effects_too_an_exit_and_no_timer_left() -> None:
    engine = _engine()
    engine.apply([_ev("b", "track", "buy", NOW)])
    applied = engine.tick(NOW + 8 * DAY)
    assert [(type(e), getattr(e, "segment", None)) for e in applied.effects] == [
        (SegmentExited, "recent_buyers"), (TimerSet, None)
    ]  # fmt: skip
    assert applied.effects[-1].day is None  # type: ignore[union-attr]
    assert engine.live.sizes.get("recent_buyers") == 0 and not engine.live.next_check
    assert [e.type for e in applied.timeline()] == ["segment_exit"]


kinds_of_event = st.sampled_from(["buy", "view", "gold", "silver"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(kinds_of_event, st.integers(0, 20)), min_size=1, max_size=25))
def test_stepping_and_committing_is_what_the_engine_does(stream: list[tuple[str, int]]) -> None:
    """The engine's apply is identity, then the step, then commit: doing those by hand
    gives the same person, sizes and timers, and every step leaves the catalog as it was."""
    by_engine, by_hand = _engine(), _engine()
    first = _ev("i", "identify", None, NOW, {"rank": "none"})
    by_engine.apply([first])
    by_hand.apply([first])
    p = by_hand.lookup("user_id", "U1")
    assert p is not None
    for n, (what, day) in enumerate(stream):
        ts = NOW + day * DAY
        if what in ("gold", "silver"):
            ev = _ev(f"m{n}", "identify", None, ts, {"rank": what})
        else:
            ev = _ev(f"m{n}", "track", what, ts)
        by_engine.apply([ev])
        before = _catalog(by_hand.live)
        out: list[Any] = []
        step(ev, p, by_hand.live, ev.received_at, out)
        assert _catalog(by_hand.live) == before
        by_hand.live.commit(out)
        if n % 7 == 6:  # time passes for both
            by_engine.tick(ts + DAY)
            by_hand.tick(ts + DAY)
    q = by_engine.lookup("user_id", "U1")
    assert q is not None
    assert msgspec.json.encode(p) == msgspec.json.encode(q)
    assert by_hand.live.sizes == by_engine.live.sizes
    assert by_hand.live.next_check == by_engine.live.next_check


def test_an_event_that_brings_an_earlier_window_edge_than_the_scheduled_one_is_rechecked_then() -> None:
    engine = Engine()
    engine.define("segment", "month", {"rule": {"did": "x", "within_days": 30}}, seq=1, now=NOW)
    engine.define("segment", "two_days", {"rule": {"did": "y", "within_days": 2}}, seq=2, now=NOW)
    engine.apply([_ev("1", "track", "x", NOW)])  # a timer for day 30
    engine.apply([_ev("2", "track", "y", NOW + 10 * DAY)])  # its window ends on day 12
    p = engine.lookup("user_id", "U1")
    assert p is not None and p.segments == ["month", "two_days"]
    engine.tick(NOW + 11 * DAY)
    assert p.segments == ["month", "two_days"]
    engine.tick(NOW + 12 * DAY)
    assert p.segments == ["month"]


WINDOWS = {"w1": 1, "w2": 2, "w5": 5, "w30": 30}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["x", "y"]), st.integers(0, 40), st.integers(0, 3)), min_size=1, max_size=20))
def test_ticking_every_day_keeps_time_based_memberships_what_the_events_say(
    stream: list[tuple[str, int, int]],
) -> None:
    """Day by day, the memberships the timer keeps are what the events say: in `e_wN`
    while an `e` happened in the last N calendar days (today included)."""
    rules = {f"{e}_{name}": {"did": e, "within_days": days} for name, days in WINDOWS.items() for e in ("x", "y")}
    events = sorted(((day, hour, e) for e, day, hour in stream), key=lambda t: (t[0], t[1]))
    live = Engine()
    for seq, (name, rule) in enumerate(rules.items(), 1):
        live.define("segment", name, {"rule": rule}, seq=seq, now=NOW)
    day_of = live.live.day_of
    seen: list[tuple[int, str]] = []  # (calendar day, event)
    for day in range(0, 45):
        for n, (_, hour, e) in enumerate(x for x in events if x[0] == day):
            ts = NOW + day * DAY + hour * 3_600_000
            live.apply([_ev(f"{day}-{n}", "track", e, ts)])
            seen.append((day_of(ts), e))
        at = NOW + (day + 1) * DAY - 1  # the end of the day, after its events and its tick
        live.tick(at)
        today = day_of(at)
        want = sorted(f"{e}_{name}" for name, days in WINDOWS.items() for e in ("x", "y")
                      if any(ev == e and today - days < d <= today for d, ev in seen))  # fmt: skip
        p = live.lookup("user_id", "U1")
        assert sorted(p.segments if p else []) == want, (day, today)
