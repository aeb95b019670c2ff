"""User data kept live only where read: the on-read fold and the back-fill agree with it.

The engine keeps live only the user data fields some definition reads. Everything else
is folded on read from the person's events (`core.userdata.fold`, what the karte and
`/people/{id}/data` show), and a field a new definition starts reading is back-filled by
SQL over the analytics store (`sql.backfill.data_query`). Both must give what counting
the field live from the first event gives.

Sessions are numbered by arrival on the streaming side and by time in SQL: the histories
arrive in time order, as `tests/sql/history.py` explains.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from tsunagu.core import userdata
from tsunagu.core.engine import Engine
from tsunagu.core.events import Event
from tsunagu.core.live import DayCache
from tsunagu.core.segments import Segment, parse_rule
from tsunagu.sql.backfill import backfill_page

from .history import NOW, TZ, analytics_store, histories, in_time_order
from .test_rule_nodes import TODAY

#: fields the histories carry (and some they never do), objects and lists among them
FIELDS = [
    "buy", "view", "cart", "$page", "$sessions", "buy.price", "view.category", "cart.member", "buy.size.cm",
    "buy.size.label", "$page.path", "buy.size", "buy.items", "view.tags", "checkin", "$sessions.x",
]  # fmt: skip


def _reading(fields: list[str]) -> dict[str, Any]:
    """A segment rule that reads every one of `fields`."""
    return {"any": [{"data": f, "op": "exists"} for f in fields]}


def _every_field(events: list[Event]) -> list[str]:
    out: set[str] = {"$sessions"}
    for ev in events:
        if ev.type not in ("track", "page", "screen"):
            continue
        name = ev.event if ev.type == "track" else "$" + ev.type
        out.add(name)  # type: ignore[arg-type]
        found: list[tuple[str, Any]] = []
        userdata.fields_of(name, ev.props(), found)  # type: ignore[arg-type]
        out.update(k for k, _ in found)
    return sorted(out)


def _reads(summary: userdata.Summary | None, session: int) -> dict[tuple[str, str], Any]:
    return {
        (window, stat): userdata.read(summary, stat, window, TODAY, session)
        for window in userdata.WINDOWS
        for stat in userdata.STATS
    }


@settings(max_examples=200, deadline=None)
@given(events=histories())
def test_user_data_folded_on_read_equals_user_data_kept_live(events: list[Event]) -> None:
    events = in_time_order(events)
    engine = Engine()
    engine.set_segments([Segment("every_field", parse_rule(_reading(_every_field(events))))])
    pids = engine.apply(events).person_ids
    day_of = DayCache(ZoneInfo(TZ))
    for pid, person in engine.persons.items():
        timeline = [
            (e.type, e.event, e.timestamp, e.message_id, e.props())
            for e, p in zip(events, pids, strict=True)
            if p == pid
        ]
        folded = userdata.fold(timeline, day_of)
        assert folded.data == person.data
        assert folded.session_no == person.session_no
        assert folded.dropped == 0


def test_the_engine_keeps_live_only_the_fields_a_definition_reads() -> None:
    events = [
        Event("m1", "track", "buy", "U1", None, NOW, NOW, "web", None, b'{"price": 3, "category": "tops"}', {}, b"{}"),
        Event("m2", "page", None, "U1", None, NOW + 1, NOW, "web", None, b'{"path": "/"}', {}, b"{}"),
    ]
    engine = Engine()
    engine.apply(events)
    person = next(iter(engine.persons.values()))
    assert person.data == {}  # nothing reads user data: nothing is kept
    assert person.session_no == 0  # sessions are kept: a rule added later reads them
    engine = Engine()
    engine.set_segments([Segment("s", parse_rule(_reading(["buy.price", "$page"])))])
    engine.apply(events)
    person = next(iter(engine.persons.values()))
    assert sorted(person.data) == ["$page", "buy.price"]
    folded = userdata.fold([(e.type, e.event, e.timestamp, e.message_id, e.props()) for e in events],
                           DayCache(ZoneInfo(TZ)))  # fmt: skip
    assert sorted(folded.data) == ["$page", "$page.path", "$sessions", "buy", "buy.category", "buy.price"]
    assert folded.data["buy.price"] == person.data["buy.price"]


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    events=histories(),
    fields=st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True),
    limit=st.sampled_from([1, 3, 10_000]),
)
def test_a_user_data_field_back_filled_by_sql_reads_as_one_counted_live(
    data: st.DataObject, events: list[Event], fields: list[str], limit: int
) -> None:
    events = in_time_order(events)
    body = {"rule": _reading(fields)}
    live = Engine()
    live.define("segment", "s", body, seq=1, now=NOW)
    live.apply(events)
    split = data.draw(st.integers(0, len(events)))
    backfilled = Engine()
    pids = backfilled.apply(events[:split]).person_ids
    backfilled.define("segment", "s", body, seq=split + 1, now=NOW)
    assert all(bf.kind == "data" for bf in backfilled.live.backfills.values())
    pids += backfilled.apply(events[split:]).person_ids
    seqs = [*range(1, split + 1), *range(split + 2, len(events) + 2)]
    con = analytics_store(backfilled, events, pids, seqs)
    for backfill in list(backfilled.live.backfills.values()):
        done = False
        while not done:
            rows, cursor, done = backfill_page(con, backfill, timezone=TZ, limit=limit)
            backfilled.apply_backfill(backfill.id, rows, cursor, done, NOW)
    assert not backfilled.live.backfills
    assert backfilled.persons.keys() == live.persons.keys()
    for pid, p in live.persons.items():
        other = backfilled.persons[pid]
        assert other.session_no == p.session_no
        for f in fields:
            assert _reads(other.data.get(f), other.session_no) == _reads(p.data.get(f), p.session_no), f
        assert other.segments == p.segments
