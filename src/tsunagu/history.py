"""Segment history reconstructed from the events: size, entries and exits per day before a definition.

A segment's report reads its entries and exits from the timeline (`segment_enter` and
`segment_exit` rows), which begin when the segment is defined. For the days before
that, a reconstruction asks the SQL evaluator who the members were at the end of each
day (`segment_query(..., as_of=True)`: only the people first seen by then, only the
events that had happened by then) and stores, per day, the size and the people who came
and went since the day before. It covers up to `MAX_DAYS` days before the definition
day, from the first day the workspace has events.

Rows live in the analytics file (`segment_history`, one per segment version and day;
`segment_history_runs`, one per finished reconstruction, with the last log record it
saw). A reconstruction writes its rows in one transaction at the end, so a report reads
the old rows until the new ones are complete. When events dated before the definition
day arrive later (a history import, the demo's load), the pipeline reconstructs again;
finding out reads only the events that arrived since that record.

Traits (`{"trait": ...}`) are what the identify events up to the day's end made them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import duckdb

from .core.computed import ComputedTrait
from .core.segments import Rule
from .sql._rows import day_start
from .sql.reports import arrived_before_query, first_event_day_query, last_seq_query
from .sql.segments import segment_query, to_sql

if TYPE_CHECKING:
    from .pipeline import WorkspacePipeline

__all__ = [
    "DDL", "MAX_DAYS", "Job", "Reconstructions", "Run", "arrived_before", "first_event_day", "forget_segment",
    "last_seq", "members_on", "reconstruct", "runs",
]  # fmt: skip

#: the days before the definition day a reconstruction covers: a report's longest range
MAX_DAYS = 366
DDL = """
CREATE TABLE IF NOT EXISTS segment_history (
    segment VARCHAR NOT NULL, version INTEGER NOT NULL, day DATE NOT NULL,
    size BIGINT NOT NULL, entries BIGINT NOT NULL, exits BIGINT NOT NULL,
    PRIMARY KEY (segment, version, day)
);
CREATE TABLE IF NOT EXISTS segment_history_runs (
    segment VARCHAR NOT NULL, version INTEGER NOT NULL, defined_day DATE NOT NULL,
    first_day DATE, upto_seq BIGINT NOT NULL, days BIGINT NOT NULL, digest VARCHAR NOT NULL,
    PRIMARY KEY (segment, version)
);
"""
log = logging.getLogger("tsunagu.history")


@dataclass(frozen=True, slots=True)
class Job:
    """One reconstruction: a segment's rule as of `version`, defined on local day `defined_day`."""

    segment: str
    version: int
    rule: Rule
    defined_day: int  # days since 1970-01-01 in the workspace's zone
    computed: Mapping[str, ComputedTrait]
    segments: Mapping[str, Rule]

    @property
    def digest(self) -> str:
        """What the answer depends on: the rule and the definitions it may read."""
        what = (self.rule, sorted(self.computed.items()), sorted(self.segments.items()))
        return hashlib.sha256(repr(what).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Run:
    """A finished reconstruction, as `segment_history_runs` holds it."""

    defined_day: int
    first_day: int | None  # the first day reconstructed (None: no events before the definition day)
    upto_seq: int  # the last log record the reconstruction saw
    days: int
    digest: str


def _iso(day: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day)).isoformat()


def _number(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def last_seq(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(*last_seq_query()).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def arrived_before(con: duckdb.DuckDBPyConnection, day: int, after_seq: int, timezone: str) -> bool:
    """Did an event dated before local day `day` arrive after log record `after_seq`? Reads
    only the rows after it (events are stored in log order: DuckDB prunes by `seq`)."""
    start, _ = day_start(day, timezone)
    row = con.execute(*arrived_before_query(after_seq, start)).fetchone()
    return bool(row and row[0])


def first_event_day(con: duckdb.DuckDBPyConnection, timezone: str) -> int | None:
    row = con.execute(*first_event_day_query(timezone)).fetchone()
    return _number(row[0]) if row and row[0] is not None else None


def members_on(con: duckdb.DuckDBPyConnection, job: Job, day: int, timezone: str) -> set[str]:
    """The people who were members at the end of local day `day` (as far as the events tell)."""
    query = segment_query(job.rule, today=day, timezone=timezone, computed=job.computed, segments=job.segments,
                          as_of=True)  # fmt: skip
    return {r[0] for r in con.execute(to_sql(query, "duckdb")).fetchall()}


def runs(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, int], Run]:
    con.execute(DDL)
    rows = con.execute(
        "SELECT segment, version, defined_day, first_day, upto_seq, days, digest FROM segment_history_runs"
    ).fetchall()
    return {(s, v): Run(_number(d), _number(f) if f else None, n, k, h) for s, v, d, f, n, k, h in rows}


def reconstruct(
    reader: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]], job: Job, timezone: str,
    progress: Callable[[int, int], None] = lambda done, total: None,
    cancelled: Callable[[], bool] = lambda: False,
) -> set[str] | None:  # fmt: skip
    """Reconstruct `job`'s days and store them; the members on the day before the definition.

    `reader()` gives a cursor for each day's query (so that a long reconstruction never
    holds the store open); `progress(done, total)` is called after each day. None if
    `cancelled()` said so between two days (nothing is stored then).
    """
    with reader() as con:
        con.execute(DDL)
        upto = last_seq(con)
        first = first_event_day(con, timezone)
    days: list[int] = []
    if first is not None and first < job.defined_day:
        days = list(range(max(first, job.defined_day - MAX_DAYS), job.defined_day))
    # a range that starts after the first events needs the members of the day before it
    cut = bool(days) and first is not None and days[0] > first
    rows: list[tuple[str, int, str, int, int, int]] = []
    prev: set[str] = set()
    total = len(days) + cut
    done = 0
    if cut:
        with reader() as con:
            prev = members_on(con, job, days[0] - 1, timezone)
        done += 1
        progress(done, total)
    for day in days:
        if cancelled():
            return None
        with reader() as con:
            now = members_on(con, job, day, timezone)
        rows.append((job.segment, job.version, _iso(day), len(now), len(now - prev), len(prev - now)))
        prev = now
        done += 1
        progress(done, total)
    if cancelled():
        return None
    with reader() as con:
        _store(con, job, rows, upto, days)
    return prev


def _store(con: duckdb.DuckDBPyConnection, job: Job, rows: list[tuple[str, int, str, int, int, int]],
           upto: int, days: list[int]) -> None:  # fmt: skip
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM segment_history WHERE segment = ?", [job.segment])
        con.execute("DELETE FROM segment_history_runs WHERE segment = ?", [job.segment])
        if rows:
            con.executemany("INSERT INTO segment_history VALUES (?, ?, ?, ?, ?, ?)", rows)
        con.execute(
            "INSERT INTO segment_history_runs VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                job.segment,
                job.version,
                _iso(job.defined_day),
                _iso(days[0]) if days else None,
                upto,
                len(days),
                job.digest,
            ],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def forget_segment(con: duckdb.DuckDBPyConnection, segment: str) -> None:
    """Drop a removed segment's reconstruction."""
    con.execute(DDL)
    con.execute("DELETE FROM segment_history WHERE segment = ?", [segment])
    con.execute("DELETE FROM segment_history_runs WHERE segment = ?", [segment])


class Reconstructions:
    """Keeps every segment's reconstruction current, in the background, one at a time.

    A segment needs one when its current version has none, or when the events dated
    before its definition day are no longer as many as when it ran (history arrived
    later). `check` finds out (the pipeline calls it on open, after a definition and now
    and then); a report reads `status` and `base`.
    """

    def __init__(self, pipe: WorkspacePipeline) -> None:
        self.pipe = pipe
        #: segment -> (days done, days in all) while its reconstruction runs
        self.progress: dict[str, tuple[int, int]] = {}
        self.queued: set[str] = set()
        self.runs: dict[tuple[str, int], Run] = {}
        self._base: dict[tuple[str, int], frozenset[str]] = {}
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def job(self, name: str) -> Job | None:
        live = self.pipe.engine.live
        d = live.definitions.get(("segment", name))
        if d is None or name not in live.segments:
            return None
        run = self.runs.get((name, d.version))
        if d.defined_at:
            day = live.day_of(d.defined_at)
        elif run is not None:  # defined before definitions kept their time
            day = run.defined_day
        else:
            day = live.day_of(self.pipe.clock())
        rules = {n: s.rule for n, s in live.segments.items()}
        return Job(name, d.version, live.segments[name].rule, day, dict(live.computed), rules)

    def check(self) -> None:
        """Start the background task (or have it look again when it is done)."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        if self.pipe.closing or self.pipe._loop is None:
            return
        self._task = self.pipe._loop.create_task(self._run(), name="segment-history")

    async def wait(self, timeout: float = 120.0) -> None:
        """Until every reconstruction wanted now is done (for tests, the demo and the CLI)."""
        self.check()
        while self._task is not None and not self._task.done():
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
            if self._again:
                self.check()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        pipe = self.pipe
        try:
            while not pipe.closing:
                self._again = False
                await pipe.flush()
                todo = await asyncio.to_thread(self._stale)
                self.queued = {j.segment for j in todo}
                for job in todo:
                    if pipe.closing:
                        return
                    await self._one(job)
                if not self._again:
                    return
        except Exception:
            log.exception("%s: reconstructing segment history failed", pipe.workspace)
        finally:
            self.queued.clear()
            self.progress.clear()

    async def _one(self, job: Job) -> None:
        pipe, live = self.pipe, self.pipe.engine.live
        self.queued.discard(job.segment)
        self.progress[job.segment] = (0, 0)

        def progress(done: int, total: int) -> None:
            self.progress[job.segment] = (done, total)

        def cancelled() -> bool:
            d = live.definitions.get(("segment", job.segment))
            return pipe.closing or d is None or d.version != job.version

        started = time.perf_counter()
        try:
            base = await asyncio.to_thread(
                reconstruct, pipe.analytics.reader, job, pipe.config.timezone, progress, cancelled
            )
        finally:
            self.progress.pop(job.segment, None)
        if base is None:
            return
        self._base[(job.segment, job.version)] = frozenset(base)
        with pipe.analytics.reader() as con:
            self.runs = runs(con)
        run = self.runs.get((job.segment, job.version))
        log.info("%s: segment %r: %d days of history reconstructed in %.1f s", pipe.workspace, job.segment,
                 run.days if run else 0, time.perf_counter() - started)  # fmt: skip

    def _stale(self) -> list[Job]:
        """The reconstructions wanted now (on a thread: it counts events)."""
        live = self.pipe.engine.live
        tz = self.pipe.config.timezone
        out = []
        with self.pipe.analytics.reader() as con:
            self.runs = runs(con)
            for name in {s for s, _ in self.runs if ("segment", s) not in live.definitions}:
                forget_segment(con, name)
            for name in list(live.segments):
                job = self.job(name)
                if job is None:
                    continue
                run = self.runs.get((name, job.version))
                if (
                    run is None or run.defined_day != job.defined_day or run.digest != job.digest
                    or arrived_before(con, job.defined_day, run.upto_seq, tz)
                ):  # fmt: skip
                    out.append(job)
        return out

    def status(self, name: str) -> dict[str, Any]:
        """Where `name`'s reconstruction stands: `done`, `running` (with progress), `queued`."""
        job = self.job(name)
        if job is None:
            return {"status": "none"}
        out: dict[str, Any] = {"defined": _iso(job.defined_day)}
        if name in self.progress:
            done, total = self.progress[name]
            return out | {"status": "running", "days_done": done, "days_total": total}
        run = self.runs.get((name, job.version))
        if run is None:
            return out | {"status": "queued"}
        state = "queued" if name in self.queued else "done"  # queued: the rows are from an earlier run
        return out | {"status": state, "first_day": _iso(run.first_day) if run.first_day is not None else None,
                      "days": run.days}  # fmt: skip

    def base(self, con: duckdb.DuckDBPyConnection, name: str) -> frozenset[str] | None:
        """The members at the end of the day before the definition day (None: not reconstructed yet)."""
        job = self.job(name)
        if job is None or (name, job.version) not in self.runs:
            return None
        key = (name, job.version)
        if key not in self._base:  # after a restart: one query
            self._base[key] = frozenset(members_on(con, job, job.defined_day - 1, self.pipe.config.timezone))
        return self._base[key]
