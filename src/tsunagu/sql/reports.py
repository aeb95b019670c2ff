"""Segment reports and the admin pages' lookups over the analytics store, as queries.

History comes from the timeline: every entry and exit is a `segment_enter` /
`segment_exit` row of `person_events` (events with their current `canonical_person_id`)
whose `properties.segment` names the segment. The shapes are written once as DuckDB text
with placeholders, parsed by sqlglot when this module loads (a typo fails at import, not
in a request) and printed back with every identifier quoted; the segment name, the
days, the person ids and the limits are bound parameters (`?`), never text in the query.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, cast

import sqlglot
from sqlglot import exp

from ._rows import col
from .timeline import param, render

__all__ = [
    "arrived_before_query",
    "entered_at_query",
    "first_event_day_query",
    "history_days_query",
    "last_seq_query",
    "members_at_query",
    "preview_query",
    "segment_days_query",
    "store_names_query",
]


def _template(sql: str) -> str:
    query = sqlglot.parse_one(sql, read="duckdb")
    assert isinstance(query, exp.Query)
    return render(cast(exp.Expression, query))


# a segment's markers (one parameter: the segment's name)
_MARKERS = "type IN ('segment_enter', 'segment_exit') AND json_extract_string(properties, '$.segment') = ?"

_SEGMENT_DAYS = _template(f"""
    WITH m AS (
        SELECT canonical_person_id AS pid, type, epoch_ms(timestamp) AS ts, seq
        FROM person_events WHERE {_MARKERS}
    ),
    spans AS (  -- each marker holds until the person's next one
        SELECT type, ts, coalesce(lead(ts) OVER (PARTITION BY pid ORDER BY ts, seq), 9e18) AS until FROM m
    ),
    b AS (SELECT unnest(?) AS i, unnest(?) AS start_ms, unnest(?) AS end_ms)
    SELECT b.i,
        (SELECT count(*) FROM m WHERE m.type = 'segment_enter' AND m.ts >= b.start_ms AND m.ts < b.end_ms),
        (SELECT count(*) FROM m WHERE m.type = 'segment_exit' AND m.ts >= b.start_ms AND m.ts < b.end_ms),
        (SELECT count(*) FROM spans s WHERE s.type = 'segment_enter' AND s.ts < b.end_ms AND s.until >= b.end_ms)
    FROM b ORDER BY b.i
""")

_MEMBERS_AT = _template(f"""
    WITH m AS (
        SELECT canonical_person_id AS pid, type, epoch_ms(timestamp) AS ts, seq
        FROM person_events WHERE {_MARKERS} AND epoch_ms(timestamp) < ?
    )
    SELECT pid FROM m QUALIFY row_number() OVER (PARTITION BY pid ORDER BY ts DESC, seq DESC) = 1
        AND type = 'segment_enter'
""")

_ENTERED_AT = _template("""
    WITH ids AS (SELECT unnest(?) AS pid)
    SELECT e.canonical_person_id, max(epoch_ms(e.timestamp)) FROM person_events e
    JOIN ids ON ids.pid = e.canonical_person_id
    WHERE e.type = 'segment_enter' AND json_extract_string(e.properties, '$.segment') = ? GROUP BY 1
""")

_HISTORY_DAYS = _template("""
    SELECT day, size, entries, exits FROM segment_history
    WHERE segment = ? AND version = ? AND day BETWEEN ? AND ?
""")

# what the timeline holds besides what people did
_SYSTEM = "type NOT IN ('segment_enter', 'segment_exit', 'merge', 'identity_conflict')"
_LAST_SEQ = _template("SELECT max(seq) FROM events")
_ARRIVED_BEFORE = _template(
    f"SELECT count(*) FROM events WHERE seq > ? AND timestamp < CAST(? AS TIMESTAMPTZ) AND {_SYSTEM}"
)
_FIRST_EVENT_DAY = _template(f"SELECT CAST(min(timestamp) AT TIME ZONE ? AS DATE) FROM events WHERE {_SYSTEM}")

_STORE_NAMES = _template("""
    SELECT store_id, arg_max(json_extract_string(properties, '$.store_name'), timestamp)
    FROM events WHERE store_id IS NOT NULL AND json_extract_string(properties, '$.store_name') IS NOT NULL
    GROUP BY 1
""")


def segment_days_query(segment: str, starts: Sequence[int], ends: Sequence[int]) -> tuple[str, list[Any]]:
    """(day index, entries, exits, size at the day's end) for days `[starts[i], ends[i])`
    (epoch ms): the size counts the people whose latest marker before the end is an entry."""
    if len(starts) != len(ends):
        raise ValueError(f"{len(starts)} day starts but {len(ends)} ends")
    return _SEGMENT_DAYS, [segment, list(range(len(starts))), list(starts), list(ends)]


def members_at_query(segment: str, end_ms: int) -> tuple[str, list[Any]]:
    """The people (as they are now) whose latest marker before `end_ms` is an entry."""
    return _MEMBERS_AT, [segment, end_ms]


def entered_at_query(segment: str, person_ids: Sequence[str]) -> tuple[str, list[Any]]:
    """(person id, when they last entered `segment`, epoch ms) for these people."""
    return _ENTERED_AT, [list(person_ids), segment]


def history_days_query(segment: str, version: int, first: date, last: date) -> tuple[str, list[Any]]:
    """(day, size, entries, exits) reconstructed for a segment version, `first` to `last`."""
    return _HISTORY_DAYS, [segment, version, first, last]


def last_seq_query() -> tuple[str, list[Any]]:
    """The last log record the analytics store holds an event of."""
    return _LAST_SEQ, []


def arrived_before_query(after_seq: int, start: datetime) -> tuple[str, list[Any]]:
    """How many events of what people did, dated before `start`, arrived after log record
    `after_seq` (events are stored in log order: DuckDB prunes by `seq`)."""
    return _ARRIVED_BEFORE, [after_seq, start.isoformat(sep=" ")]


def first_event_day_query(timezone: str) -> tuple[str, list[Any]]:
    """The local day (in `timezone`) of the first event of what people did."""
    return _FIRST_EVENT_DAY, [timezone]


def store_names_query() -> tuple[str, list[Any]]:
    """(store id, the name its latest event with one gave it: `properties.store_name`)."""
    return _STORE_NAMES, []


def preview_query(members: exp.Query, sample: int) -> tuple[str, list[Any]]:
    """(member count, the first `sample` member ids in order) of a segment's members query."""
    cte = exp.select(exp.Count(this=exp.Star())).from_("members").subquery()
    first = exp.select(col("person_id")).from_("members").limit(param()).subquery()
    ids = exp.select(
        exp.Anonymous(
            this="list",
            expressions=[exp.Order(this=col("person_id"), expressions=[exp.Ordered(this=col("person_id"))])],
        )
    ).from_(first)
    query = exp.select(cte, ids.subquery()).with_("members", as_=members.copy())
    return render(query), [sample]
