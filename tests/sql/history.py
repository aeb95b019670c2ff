"""Generated event histories and the analytics store they load into (shared by the SQL tests).

Histories are meant to reach the corners the two evaluators must agree on: several
people, values of every JSON type (strings, integers, booleans, nested objects, lists of
objects), page events, store events, and times clustered within minutes of each other
(sessions: gaps of exactly 30 and 31 minutes) and spread over ~70 days (every calendar
window, both sides of midnight in the workspace's zone).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
from hypothesis import strategies as st

from tsunagu.core.engine import Engine
from tsunagu.core.events import Event
from tsunagu.storage.duckdb_analytics import _SCHEMA

TZ = "Asia/Tokyo"
NOW = int(datetime(2026, 11, 20, 12, 0, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)
DAY = 86_400_000
MINUTE = 60_000
CATEGORIES = ["outer", "tops", "shoes"]
# minutes before the day's noon: clusters for sessions (30: same session, 31: a new one),
# and 12h30 reaches the evening before (the other side of midnight)
_MINUTES = [0, 1, 10, 30, 31, 61, 92, 300, 719, 720, 750]


@st.composite
def properties(draw: st.DrawFn) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if draw(st.integers(0, 4)):
        props["category"] = draw(st.sampled_from(CATEGORIES))
    if draw(st.integers(0, 3)):
        props["price"] = draw(st.sampled_from([0, 1, 3, 10, 25, 40]))
    if draw(st.booleans()):
        props["member"] = draw(st.booleans())
    if draw(st.integers(0, 2)) == 0:
        items = draw(st.lists(st.sampled_from([*CATEGORIES, None, "ignored"]), max_size=3))
        props["items"] = [{"category": c} if c != "ignored" else {"sku": 1} for c in items]
    if draw(st.integers(0, 3)) == 0:
        props["size"] = {"cm": draw(st.sampled_from([20, 25, 30])), "label": draw(st.sampled_from(["S", "M"]))}
    if draw(st.integers(0, 4)) == 0:
        props["tags"] = draw(st.lists(st.sampled_from(["new", "sale"]), max_size=2))
    return props


@st.composite
def histories(draw: st.DrawFn, max_events: int = 30, anonymous: bool = False) -> list[Event]:
    """Events of U0..U4 (with `anonymous`, also of anonymous ids later linked to them)."""
    events = []
    for i in range(draw(st.integers(1, max_events))):
        k = draw(st.integers(0, 4))
        days = draw(st.one_of(st.integers(0, 3), st.integers(0, 70)))
        ts = NOW - days * DAY - draw(st.sampled_from(_MINUTES)) * MINUTE - draw(st.sampled_from([0, 0, 1]))
        uid: str | None = f"U{k}"
        aid = None
        if anonymous and draw(st.integers(0, 2)) == 0:
            aid = f"a{k}-{draw(st.integers(0, 1))}"
            uid = uid if draw(st.integers(0, 3)) == 0 else None  # sometimes the identify that links
        kind = draw(st.integers(0, 7))
        mid = f"m{i:03d}"
        if kind == 0:
            traits: dict[str, Any] = {"rank": draw(st.sampled_from(["gold", "silver", "regular"]))}
            if draw(st.booleans()):
                traits["points"] = draw(st.integers(0, 300))
            events.append(Event(mid, "identify", None, uid, aid, ts, NOW, "web", None, b"{}", traits, b"{}"))
        elif kind == 1:
            props = json.dumps({"path": draw(st.sampled_from(["/", "/sale", "/item"]))}).encode()
            events.append(Event(mid, "page", "Home", uid, aid, ts, NOW, "web", None, props, {}, b"{}"))
        else:
            name = draw(st.sampled_from(["view", "cart", "buy"]))
            channel = draw(st.sampled_from(["web", "app", "store"]))
            store = draw(st.sampled_from(["S1", "S2"])) if channel == "store" and draw(st.integers(0, 3)) else None
            props = json.dumps(draw(properties())).encode()
            events.append(Event(mid, "track", name, uid, aid, ts, NOW, channel, store, props, {}, b"{}"))
        if uid is None and aid is None:
            events[-1].user_id = f"U{k}"
    return events


def in_time_order(events: list[Event]) -> list[Event]:
    """Sessions are numbered by arrival on the streaming side: feed events by time."""
    return sorted(events, key=lambda e: (e.timestamp, e.message_id))


def analytics_store(
    engine: Engine, events: list[Event], person_ids: list[str], seqs: list[int] | None = None
) -> duckdb.DuckDBPyConnection:
    """The analytics store's tables (its real schema) holding `events` as applied, in order
    (log seqs 1, 2, ... unless given; each with the person it arrived with), and the engine's
    people and aliases."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(_SCHEMA)
    con.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, make_timestamptz(? * 1000), make_timestamptz(? * 1000),"
        " ?, ?, ?, '{}', ?)",
        [
            (seq, e.message_id, pid, e.type, e.event, e.channel, e.store_id, e.timestamp, e.received_at, e.user_id,
             e.anonymous_id, e.properties.decode(), json.dumps(e.traits))
            for seq, e, pid in zip(seqs or range(1, len(events) + 1), events, person_ids, strict=True)
        ],
    )  # fmt: skip
    con.executemany(
        "INSERT INTO people (person_id, traits) VALUES (?, ?)",
        [(p.person_id, json.dumps(p.traits)) for p in engine.persons.values()],
    )
    if engine.aliases:
        con.executemany("INSERT INTO person_aliases VALUES (?, ?)", list(engine.aliases.items()))
    return con
