"""The analytics `events`, laid out by person: a hot table and sorted runs under one view.

Events arrive in time order, so every DuckDB row group holds every person and a person's
timeline read scanned the `person_id` of every row (1.4 s at 50M events). Here the writer
appends to `events_hot`; when it holds `run_rows` rows it is sorted by (person id, time)
into a run, `events_run_<n>`, whose zone maps then point a read for one person at one row
group or two. Runs of the same size tier (`fanout` of them) are merged, sorted, into one
of the next tier in the background, so a read probes a few runs whatever the history,
and each event is rewritten about log_fanout(events / run_rows) times.

`events` is a view over the hot table and the runs (same columns, same order), so every
reader's SQL is unchanged. The runs are listed in `event_runs`; a file from before this
layout has its `events` table renamed into an unsorted run at open, sorted later by the
same background work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["HOT", "RUNS_DDL", "SORT", "Run", "pick_merge", "run_name", "sorted_sql", "view_sql"]

HOT = "events_hot"
RUNS_DDL = """
CREATE TABLE IF NOT EXISTS event_runs (
    name VARCHAR PRIMARY KEY,   -- events_run_<n>
    first_seq BIGINT NOT NULL,  -- the oldest log record it holds (runs are listed oldest first)
    rows BIGINT NOT NULL,
    sorted BOOLEAN NOT NULL     -- by (person_id, timestamp); a migrated table is not, at first
);
"""


@dataclass(frozen=True, slots=True)
class Run:
    name: str
    first_seq: int
    rows: int
    sorted: bool


def run_name(n: int) -> str:
    return f"events_run_{n}"


#: how a run is sorted: by person, then as the rows arrived (a log record's events share a
#: seq; `rowid` keeps their order), so a run's `rowid` is arrival order within a person
SORT = "person_id, seq, rowid"


def view_sql(runs: list[Run], columns: list[str]) -> str:
    """`events` over the hot table and the runs, newest first, columns named (a run made
    from another table has its columns in the same order; naming them makes sure); and
    `event_rows`, the same with `pos` (the row's place within its seq, for readers that
    fold events in arrival order: a seq's rows are all in one table)."""
    cols = ", ".join(f'"{c}"' for c in columns)
    tables = [HOT, *(r.name for r in sorted(runs, key=lambda r: r.first_seq, reverse=True))]
    body = " UNION ALL ".join(f"SELECT {cols} FROM {t}" for t in tables)
    rows = " UNION ALL ".join(f"SELECT rowid AS pos, {cols} FROM {t}" for t in tables)
    return f"CREATE OR REPLACE VIEW events AS {body}; CREATE OR REPLACE VIEW event_rows AS {rows}"


def sorted_sql(name: str, sources: list[str]) -> str:
    """`CREATE TABLE name` from `sources`, sorted (`SORT`): each source's rowid is its
    arrival order, and a seq's rows are all in one source."""
    union = " UNION ALL ".join(f"SELECT *, rowid AS _pos FROM {t}" for t in sources)
    order = SORT.replace("rowid", "_pos")
    return f"CREATE TABLE {name} AS SELECT * EXCLUDE (_pos) FROM ({union}) ORDER BY {order}"


def tier(rows: int, run_rows: int, fanout: int) -> int:
    """0 for a run as sealed, 1 for `fanout` of them merged, and so on."""
    if rows <= run_rows:
        return 0
    return int(math.log(rows / run_rows, fanout) + 1e-9)


#: the largest run a merge writes, in runs as sealed: one sort of 50M events (as a 50M
#: file's migration needs) ran out of the store's 512 MB; 16M rows sorted within it
MAX_RUNS_MERGED = 16


def pick_merge(runs: list[Run], run_rows: int, fanout: int, skip: frozenset[str] = frozenset()) -> list[Run]:
    """The runs to rewrite next as one sorted run: an unsorted run on its own, else the
    oldest `fanout` runs of the lowest full tier, else none. A merge never writes more
    than `MAX_RUNS_MERGED * run_rows` rows (bigger runs stay as they are; an unsorted one
    that big is read correctly, only without the zone maps' help); `skip`: runs a merge
    already failed on (tried again after a restart)."""
    cap = MAX_RUNS_MERGED * run_rows
    ordered = [r for r in sorted(runs, key=lambda r: r.first_seq) if r.name not in skip]
    for r in ordered:
        if not r.sorted and r.rows <= cap:
            return [r]
    tiers: dict[int, list[Run]] = {}
    for r in ordered:
        if r.sorted:
            tiers.setdefault(tier(r.rows, run_rows, fanout), []).append(r)
    for t in sorted(tiers):
        if len(tiers[t]) >= fanout and sum(r.rows for r in tiers[t][:fanout]) <= cap:
            return tiers[t][:fanout]
    return []
