"""The analytics store on DuckDB: events, people and aliases as tables for SQL.

Written in batches behind the log by one thread (DuckDB likes few large appends), with
the log seq the batch covers stored in the same transaction, so after a crash the
pipeline knows exactly which log records to replay into it.

A row DuckDB refuses never stops the writer: when a batch fails, its rows are tried in
halves against a scratch table (in memory, so a full disk cannot pass for bad data)
until the rows that fail on their own are found; those go to the quarantine with the
reason (`on_reject`), the rest is written, and the writer goes on. A failure no single
row explains (the disk, the file) is retried with a growing pause, logged once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from ..core.errors import Unavailable
from ..core.ports import HOT_PROPERTIES, AnalyticsBatch, LogRecord, OnReject, RecordReader, Reject
from .duckdb_datahub import DuckDBDatahub
from .event_runs import HOT, RUNS_DDL, Run, pick_merge, run_name, sorted_sql, view_sql

__all__ = ["AnalyticsClosed", "DuckDBAnalytics"]

log = logging.getLogger("tsunagu.analytics")


class AnalyticsClosed(Unavailable):
    """A read arrived after the store began to close (the workspace is reopening)."""


_EVENTS_DDL = """
CREATE {temp} TABLE IF NOT EXISTS {name} (
    seq BIGINT NOT NULL,              -- the log record holding the event
    message_id VARCHAR NOT NULL,
    person_id VARCHAR NOT NULL,       -- the person when it arrived; see person_aliases
    type VARCHAR NOT NULL,            -- track, page, identify, ..., merge, identity_conflict
    event VARCHAR,                    -- the track event name (view, cart, buy, ...) or page name
    channel VARCHAR NOT NULL,         -- web, app, store, email, line, server, ...
    store_id VARCHAR,
    timestamp TIMESTAMPTZ NOT NULL,   -- when it happened (clock-skew corrected)
    received_at TIMESTAMPTZ NOT NULL,
    user_id VARCHAR,
    anonymous_id VARCHAR,
    properties JSON,
    context JSON,
    traits JSON
);
"""
_PEOPLE_DDL = """
CREATE {temp} TABLE IF NOT EXISTS {name} (
    person_id VARCHAR PRIMARY KEY,
    identifiers JSON,
    traits JSON,
    first_seen TIMESTAMPTZ,
    last_seen TIMESTAMPTZ,
    channels JSON,
    stores JSON,
    event_count BIGINT,
    merged_ids VARCHAR[]
);
"""
# `e.*`: DuckDB binds a view's columns when it is created, so it is made again after the
# hot columns are added (`_add_hot_columns`)
_PERSON_EVENTS_VIEW = """
CREATE OR REPLACE VIEW person_events AS
    SELECT coalesce(a.person_id, e.person_id) AS canonical_person_id, e.*
    FROM events e LEFT JOIN person_aliases a ON a.alias = e.person_id;
"""
# The events as one table, as they were before the hot columns and the runs: what a file
# generated outside a store (benchmarks, SQL tests) holds. A store adds the hot columns and
# lays the table out in runs when it opens it (`_open_events`), as it does an old file.
_SCHEMA = (
    _EVENTS_DDL.format(temp="", name="events")
    + _PEOPLE_DDL.format(temp="", name="people")
    + """
-- every person id that was merged away, and the person it lives on in
CREATE TABLE IF NOT EXISTS person_aliases (alias VARCHAR PRIMARY KEY, person_id VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT);
CREATE OR REPLACE VIEW event_rows AS SELECT rowid AS pos, * FROM events;
"""
    + _PERSON_EVENTS_VIEW
)
# What a store creates at open besides the events (laid out by `_open_events`).
_BASE_SCHEMA = (
    _PEOPLE_DDL.format(temp="", name="people")
    + """
CREATE TABLE IF NOT EXISTS person_aliases (alias VARCHAR PRIMARY KEY, person_id VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT);
"""
    + RUNS_DDL
)
_NUMERIC_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')"  # sql._rows.NUMERIC_TYPES


def _hot_value(key: str, typ: str, properties: str = "properties") -> str:
    """The SQL of a hot column's value (`core.ports.HOT_PROPERTIES`): the very expression the
    SQL compilers read from the JSON (`sql._rows.where_property`, `number_of`), so the column
    cannot disagree with it; `tests/storage/test_hot_properties.py` checks both on a file."""
    value, text = f"{properties} -> '$.{key}'", f"{properties} ->> '$.{key}'"
    if typ == "VARCHAR":
        return f"CASE WHEN json_type({value}) = 'VARCHAR' THEN {text} END"
    assert typ == "DOUBLE", typ
    return f"CASE WHEN json_type({value}) IN {_NUMERIC_TYPES} THEN TRY_CAST({text} AS DOUBLE) END"


_HOT_COLUMNS = ", ".join(f'"{k}"' for k in HOT_PROPERTIES)
_HOT_VALUES = ", ".join(f'{_hot_value(k, t)} AS "{k}"' for k, t in HOT_PROPERTIES.items())
# The JSON is decoded (and validated) by the cast, then read once more for the hot columns,
# in the same statement: a row DuckDB refuses fails here as before, with its JSON.
_INSERT_EVENTS = (
    "INSERT INTO {name} BY NAME SELECT *, " + _HOT_VALUES + " FROM (SELECT * REPLACE ("
    " CAST(decode(properties) AS JSON) AS properties, CAST(decode(context) AS JSON) AS context,"
    " CAST(decode(traits) AS JSON) AS traits) FROM {source})"
)
_INSERT_PEOPLE = "INSERT OR REPLACE INTO {name} SELECT * FROM {source}"


_FILL_ROWS = 2_000_000  # events a migration step fills: one transaction, then a checkpoint


def _add_hot_columns(con: duckdb.DuckDBPyConnection, table: str, meta: str | None = None) -> list[str]:
    """Give `table` (an events table) the hot columns it lacks, filled from `properties`.

    The columns are added in one transaction with a mark in `meta` (`hot_fill_seq`: filled up
    to this log seq); then the rows are filled in steps of log seqs (a single UPDATE of 50M
    rows ran out of 512 MB), each committed with its mark and checkpointed, so a crash
    resumes where it stopped. The mark goes when all is filled. The columns added."""
    have = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
    missing = [k for k in HOT_PROPERTIES if k not in have]
    # fetchall: a result left open keeps the connection from `register` (the probe's)
    marks = con.execute(f"SELECT value FROM {meta} WHERE key = 'hot_fill_seq'").fetchall() if meta else []
    mark = marks[0] if marks else None
    if not missing and mark is None:
        return []
    con.execute("BEGIN TRANSACTION")
    try:
        for k in missing:
            con.execute(f'ALTER TABLE {table} ADD COLUMN "{k}" {HOT_PROPERTIES[k]}')
        if meta is not None and mark is None:
            con.execute(f"INSERT OR REPLACE INTO {meta} VALUES ('hot_fill_seq', 0)")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    done = int(mark[0]) if mark is not None else 0
    fill = ", ".join(f'"{k}" = {_hot_value(k, t)}' for k, t in HOT_PROPERTIES.items())
    ((low, high, rows),) = con.execute(
        f"SELECT min(seq), max(seq), count(*) FROM {table} WHERE seq > ?", [done]
    ).fetchall()
    if rows:
        step = max(1, (high - low + 1) * _FILL_ROWS // rows)
        for upto in range(low - 1 + step, high + step, step):
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"UPDATE {table} SET {fill} WHERE seq > ? AND seq <= ?", [done, upto])
                if meta is not None:
                    con.execute(f"INSERT OR REPLACE INTO {meta} VALUES ('hot_fill_seq', ?)", [upto])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            done = upto
            if meta is not None:
                con.execute("CHECKPOINT")
    if meta is not None:
        con.execute(f"DELETE FROM {meta} WHERE key = 'hot_fill_seq'")
    return missing or list(HOT_PROPERTIES)


_TS = pa.timestamp("ms", tz="UTC")
# core.ports.EVENT_COLUMNS, typed (a batch's columns are read by these names)
_EVENT_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("message_id", pa.string()),
        ("person_id", pa.string()),
        ("type", pa.string()),
        ("event", pa.string()),
        ("channel", pa.string()),
        ("store_id", pa.string()),
        ("timestamp", _TS),
        ("received_at", _TS),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        # JSON bytes, handed over as binary (a copy) and decoded as UTF-8 by DuckDB
        # (validating 600 bytes an event in pyarrow held the GIL for a microsecond)
        ("properties", pa.binary()),
        ("context", pa.binary()),
        ("traits", pa.binary()),
    ]
)
_PEOPLE_SCHEMA = pa.schema(
    [
        ("person_id", pa.string()),
        ("identifiers", pa.string()),
        ("traits", pa.string()),
        ("first_seen", _TS),
        ("last_seen", _TS),
        ("channels", pa.string()),
        ("stores", pa.string()),
        ("event_count", pa.int64()),
        ("merged_ids", pa.list_(pa.string())),
    ]
)

_json = msgspec.json.Encoder()


def _events_table(columns: dict[str, list[Any]]) -> pa.Table:
    enc = _json.encode
    arrays = []
    for name, typ in zip(_EVENT_SCHEMA.names, _EVENT_SCHEMA.types, strict=True):
        values = columns[name]
        if name == "traits":  # properties and context arrive as the JSON bytes clients sent
            values = [enc(v) if v else b"{}" for v in values]
        arrays.append(pa.array(values, type=typ))
    return pa.Table.from_arrays(arrays, schema=_EVENT_SCHEMA)


def _people_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    cols = list(zip(*rows, strict=True))
    enc = _json.encode
    for i in (1, 2, 5, 6):
        cols[i] = [enc(v).decode() for v in cols[i]]
    arrays = [pa.array(c, type=t) for c, t in zip(cols, _PEOPLE_SCHEMA.types, strict=True)]
    return pa.Table.from_arrays(arrays, schema=_PEOPLE_SCHEMA)


def _final_survivors(merges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    target: dict[str, str] = {}
    for loser, survivor in merges:
        target[loser] = survivor

    def final(pid: str) -> str:
        seen = set()
        while pid in target and pid not in seen:
            seen.add(pid)
            pid = target[pid]
        return pid

    return [(loser, final(loser)) for loser in target]


class DuckDBAnalytics:
    """Tails the event log into DuckDB from a thread of its own.

    The thread reads log records after the seq it has written, turns them into rows with
    the pipeline's `RecordReader`, and writes them with any persons handed over since,
    in one transaction that also records the new seq. Nothing waits for it on the ingest
    path; a read that must see everything calls `wait_for(seq)`.
    """

    def __init__(
        self, path: Path, *, memory_limit: str | None = None, run_rows: int = 1_000_000, fanout: int = 4
    ) -> None:
        self.path = path
        # DuckDB caches up to 80% of RAM by default: fine for a warehouse, not for a
        # process that also holds person state on someone's laptop.
        memory_limit = memory_limit or os.environ.get("TSUNAGU_DUCKDB_MEMORY_LIMIT", "512MB")
        self._con = duckdb.connect(str(path), config={"memory_limit": memory_limit})
        self._con.execute(_BASE_SCHEMA)
        self.run_rows = run_rows  # rows the hot table holds before it is sorted into a run
        self.fanout = fanout  # runs of a tier merged into one of the next
        #: serialises changes of the layout (seal, merge swap) with the writer's transactions
        self._layout = threading.Lock()
        self._runs: list[Run] = []
        self._columns: list[str] = []
        self._hot_rows = 0
        self._open_events()
        self.hot_properties = frozenset(HOT_PROPERTIES)
        self._merging = False
        self._forgotten: list[tuple[list[str], list[str]]] = []  # forgets while a merge runs
        self._merge_wake = threading.Event()
        self._merger: threading.Thread | None = None
        self._merge_cursor: duckdb.DuckDBPyConnection | None = None
        self.merges = 0  # runs written by merges since start (a figure for tests and benchmarks)
        self._merge_failed: set[str] = set()
        self._seq = self._read_seq()
        self.datahub = DuckDBDatahub(self._con.cursor, hold=self._reading)
        self._people: queue.SimpleQueue[tuple[list[tuple[Any, ...]], list[str]]] = queue.SimpleQueue()
        self._people_handed = 0  # hand-overs queued (by the event loop)
        self._people_written = 0  # hand-overs committed (by the writer thread)
        self._wake = threading.Event()
        self._written = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._on_reject: OnReject = lambda reject: None
        self._readers = 0
        self._readers_changed = threading.Condition()
        self._closing = False
        self.error: BaseException | None = None
        self.rejected = 0  # rows moved aside since start
        self.max_rows = 25_000  # per transaction: bounded memory however far behind

    # -- the layout: a hot table and sorted runs under the `events` view ------------------

    def _open_events(self) -> None:
        """Lay out the events: a new file gets an empty hot table; a file from before this
        layout (one `events` table) gets the hot columns it lacks, then has that table
        renamed into an unsorted run, sorted later in the background."""
        con = self._con
        kind = con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_schema = 'main' AND table_name = 'events'"
        ).fetchall()
        if kind and kind[0][0] == "BASE TABLE":
            # Before the writer starts and before any read: the compiled SQL reads the hot
            # columns wherever it can, so a file must never be open with them half filled.
            added = _add_hot_columns(con, "events", "meta")
            if added:
                log.info("%s: added and filled the hot columns %s", self.path, ", ".join(added))
            ((rows, first),) = con.execute("SELECT count(*), coalesce(min(seq), 0) FROM events").fetchall()
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute("DROP VIEW IF EXISTS person_events")
                if rows:
                    name = run_name(self._next_run())
                    con.execute(f"ALTER TABLE events RENAME TO {name}")
                    con.execute("INSERT INTO event_runs VALUES (?, ?, ?, false)", [name, first, rows])
                    con.execute(f"CREATE TABLE {HOT} AS SELECT * FROM {name} LIMIT 0")
                else:
                    con.execute(f"ALTER TABLE events RENAME TO {HOT}")
                self._columns = [r[0] for r in con.execute(f"DESCRIBE {HOT}").fetchall()]
                self._runs = self._read_runs()
                con.execute(view_sql(self._runs, self._columns))
                con.execute(_PERSON_EVENTS_VIEW)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            log.info("%s: events laid out by person (%d rows to sort in the background)", self.path, rows)
        for (stray,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'events_merge_%'"
        ).fetchall():  # a merge written, not swapped in, when the process stopped: its runs are there
            con.execute(f"DROP TABLE {stray}")
        if kind and kind[0][0] == "VIEW":
            self._columns = [r[0] for r in con.execute(f"DESCRIBE {HOT}").fetchall()]
            con.execute(view_sql(self._read_runs(), self._columns))  # as this version lays them out
            con.execute(_PERSON_EVENTS_VIEW)
        elif not kind:
            con.execute(_EVENTS_DDL.format(temp="", name=HOT))
            _add_hot_columns(con, HOT)
            self._columns = [r[0] for r in con.execute(f"DESCRIBE {HOT}").fetchall()]
            con.execute(view_sql([], self._columns))
            con.execute(_PERSON_EVENTS_VIEW)
        self._runs = self._read_runs()
        self._hot_rows = con.execute(f"SELECT count(*) FROM {HOT}").fetchall()[0][0]

    def _read_runs(self) -> list[Run]:
        rows = self._con.execute("SELECT name, first_seq, rows, sorted FROM event_runs ORDER BY first_seq").fetchall()
        return [Run(*r) for r in rows]

    def _next_run(self) -> int:
        """A new run's number (kept in `meta`, inside the caller's transaction)."""
        row = self._con.execute("SELECT value FROM meta WHERE key = 'run_counter'").fetchall()
        n = (int(row[0][0]) if row else 0) + 1
        self._con.execute("INSERT OR REPLACE INTO meta VALUES ('run_counter', ?)", [n])
        return n

    def runs(self) -> list[Run]:
        """The sorted runs, oldest first (what a read probes besides the hot table)."""
        return list(self._runs)

    def _event_tables(self) -> list[str]:
        return [HOT, *(r.name for r in self._runs)]

    def _seal(self) -> None:
        """The hot table, full: sorted into a new run (one transaction; by the writer)."""
        con = self._con
        with self._layout:
            ((rows, first),) = con.execute(f"SELECT count(*), coalesce(min(seq), 0) FROM {HOT}").fetchall()
            if not rows:
                return
            con.execute("BEGIN TRANSACTION")
            try:
                name = run_name(self._next_run())
                con.execute(sorted_sql(name, [HOT]))
                con.execute(f"DROP TABLE {HOT} CASCADE")
                con.execute(f"CREATE TABLE {HOT} AS SELECT * FROM {name} LIMIT 0")
                con.execute("INSERT INTO event_runs VALUES (?, ?, ?, true)", [name, first, rows])
                runs = [*self._runs, Run(name, first, rows, True)]
                con.execute(view_sql(runs, self._columns))
                con.execute(_PERSON_EVENTS_VIEW)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            self._runs = runs
            self._hot_rows = 0
        self._merge_wake.set()

    def _merge_loop(self) -> None:
        while not self._stop:
            self._merge_wake.wait(5.0)
            self._merge_wake.clear()
            while not self._stop:
                with self._layout:
                    todo = pick_merge(self._runs, self.run_rows, self.fanout, frozenset(self._merge_failed))
                    if not todo:
                        break
                    self._merging, self._forgotten = True, []
                try:
                    self._merge(todo)
                except Exception:  # the runs stay as they are: reads are right, only slower
                    if not self._stop:
                        self._merge_failed.update(r.name for r in todo)  # not again until a restart
                        log.exception("%s: merging %d event runs failed", self.path, len(todo))
                    break
                finally:
                    with self._layout:
                        self._merging, self._forgotten = False, []

    def _merge(self, todo: list[Run]) -> None:
        """Write `todo` as one sorted run (beside the writer), then swap it in."""
        cur = self._merge_cursor = self._con.cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            n = int(cur.execute("SELECT coalesce(max(value), 0) FROM meta WHERE key = 'run_counter'").fetchall()[0][0])
            name = f"events_merge_{n}_{todo[0].first_seq}"
            cur.execute(f"DROP TABLE IF EXISTS {name}")
            try:
                cur.execute(sorted_sql(name, [r.name for r in todo]))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            with self._layout:  # the writer waits: the swap and the forgets meanwhile, at once
                cur.execute("BEGIN TRANSACTION")
                try:
                    for ids, values in self._forgotten:
                        _forget_events(cur, name, ids, values)
                    for r in todo:
                        cur.execute(f"DROP TABLE {r.name}")
                    cur.execute("DELETE FROM event_runs WHERE list_contains(?, name)", [[r.name for r in todo]])
                    final = run_name(int(cur.execute(
                        "SELECT coalesce(max(value), 0) + 1 FROM meta WHERE key = 'run_counter'"
                    ).fetchall()[0][0]))  # fmt: skip
                    cur.execute("INSERT OR REPLACE INTO meta VALUES ('run_counter', ?)", [int(final.rsplit("_", 1)[1])])
                    cur.execute(f"ALTER TABLE {name} RENAME TO {final}")
                    rows = cur.execute(f"SELECT count(*) FROM {final}").fetchall()[0][0]
                    merged = Run(final, todo[0].first_seq, rows, True)
                    cur.execute("INSERT INTO event_runs VALUES (?, ?, ?, true)", [final, merged.first_seq, rows])
                    runs = [r for r in self._runs if r not in todo] + [merged]
                    cur.execute(view_sql(runs, self._columns))
                    cur.execute(_PERSON_EVENTS_VIEW)
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    cur.execute(f"DROP TABLE IF EXISTS {name}")
                    raise
                self._runs = sorted(runs, key=lambda r: r.first_seq)
                self.merges += 1
        finally:
            self._merge_cursor = None
            cur.close()

    def _read_seq(self) -> int:
        row = self._con.execute("SELECT value FROM meta WHERE key = 'applied_seq'").fetchone()
        return int(row[0]) if row else 0

    def applied_seq(self) -> int:
        return self._seq

    # -- the writer thread -------------------------------------------------------------

    def start(
        self,
        tail: Callable[[int, int], list[LogRecord]],
        reader: RecordReader,
        interval: float,
        on_reject: OnReject | None = None,
    ) -> None:
        if on_reject is not None:
            self._on_reject = on_reject
        self._thread = threading.Thread(
            target=self._run, args=(tail, reader, interval), name=f"analytics:{self.path.parent.name}", daemon=True
        )
        self._thread.start()
        self._merger = threading.Thread(target=self._merge_loop, name=f"runs:{self.path.parent.name}", daemon=True)
        self._merger.start()
        self._merge_wake.set()

    def hand_over(self, people: list[tuple[Any, ...]], removed: list[str]) -> None:
        """Person rows to upsert with the next write (the engine owns them; we copy)."""
        self._people_handed += 1
        self._people.put((people, removed))
        self._wake.set()

    def wait_for(self, seq: int, timeout: float = 30.0) -> bool:
        """Block until everything up to `seq` (and every person handed over) is written.

        False if it is not by `timeout`, or if the store is closing (nothing more will be).
        """
        handed = self._people_handed
        self._wake.set()
        with self._written:
            self._written.wait_for(
                lambda: (self._seq >= seq and self._people_written >= handed) or self.error is not None or self._stop,
                timeout,
            )
            return (self._seq >= seq and self._people_written >= handed) or (self.error is not None and not self._stop)

    def _run(self, tail: Callable[[int, int], list[LogRecord]], reader: RecordReader, interval: float) -> None:
        failures = 0
        while not self._stop:
            # After a failure no row explains, wait longer each time (up to a minute).
            self._wake.wait(interval if not failures else min(60.0, 0.5 * 2**failures))
            self._wake.clear()
            if self._stop:
                break
            try:
                self.catch_up(tail, reader)
            except BaseException as exc:  # keep going: the log still has it all
                failures += 1
                self.error = exc
                if failures == 1:
                    log.exception("%s: analytics write failed; retrying with a growing pause", self.path)
                elif failures & (failures - 1) == 0:  # 2, 4, 8, ...: a line, not a traceback a second
                    log.warning("%s: analytics write still failing after %d tries: %s", self.path, failures, exc)
            else:
                if failures:
                    log.info("%s: analytics writes work again after %d failed tries", self.path, failures)
                failures = 0
                self.error = None
            with self._written:
                self._written.notify_all()

    def catch_up(self, tail: Callable[[int, int], list[LogRecord]], reader: RecordReader) -> None:
        """Write every log record after our seq (and pending persons), in bounded batches."""
        while True:
            batch = AnalyticsBatch(seq=self._seq)
            taken = []
            while not self._people.empty():
                item = self._people.get()
                batch.people += item[0]
                batch.removed += item[1]
                taken.append(item)
            records = tail(self._seq, 200)
            while records:
                for rec in records:
                    reader(rec, batch)
                    batch.seq = rec.seq
                if len(batch) >= self.max_rows:
                    break
                records = tail(batch.seq, 200)
            if batch.seq == self._seq and not taken:
                return
            try:
                self.write(batch)
            except BaseException:
                for item in taken:  # hand them over again with the next try
                    self._people.put(item)
                raise
            self._people_written += len(taken)
            if not records:
                return

    def write(self, batch: AnalyticsBatch) -> None:
        """Write one batch in one transaction, with the seq it covers.

        Rows DuckDB refuses on their own are moved aside (`on_reject`) and the rest is
        written; a failure no row explains is raised.
        """
        pairs = _final_survivors(batch.merges)
        gone = list({*batch.removed, *(p[0] for p in pairs)})
        events = _events_table(batch.events) if len(batch) else None
        people = None
        if batch.people:
            latest = {row[0]: row for row in batch.people}  # a person handed over twice: the newest
            for pid in gone:
                latest.pop(pid, None)
            if latest:
                people = _people_table(list(latest.values()))
        with self._layout:
            try:
                self._write(batch, events, people, pairs, gone)
            except duckdb.Error as exc:
                events, people, found = self._set_aside(events, people, batch)
                if not found:
                    raise
                log.warning("%s: %d rows moved to the quarantine (%s)", self.path, found, exc)
                self._write(batch, events, people, pairs, gone)
            if batch.forget and self._merging:  # the merge in flight must forget them too
                self._forgotten.append((list(batch.forget), list(batch.forget_values)))
            if events is not None:
                self._hot_rows += events.num_rows
        if self._hot_rows >= self.run_rows:
            self._seal()

    def _write(
        self,
        batch: AnalyticsBatch,
        tbl: pa.Table | None,
        ptbl: pa.Table | None,
        pairs: list[tuple[str, str]],
        gone: list[str],
    ) -> None:
        con = self._con
        # Never lower on disk than in memory: a batch of persons only may carry an older
        # seq, and a restart that read it back would write records after it a second time.
        seq = max(self._seq, batch.seq)
        con.execute("BEGIN TRANSACTION")
        try:
            if tbl is not None and tbl.num_rows:
                con.execute(_INSERT_EVENTS.format(name=HOT, source="tbl"))
            if batch.forget:
                # After the insert: events of the forgotten ids still in this batch go too.
                ids = batch.forget
                for table in self._event_tables():
                    _forget_events(con, table, ids, batch.forget_values)
                con.execute(
                    "DELETE FROM person_aliases WHERE list_contains(?, alias) OR list_contains(?, person_id)",
                    [ids, ids],
                )
                con.execute("DELETE FROM people WHERE list_contains(?, person_id)", [ids])
            if pairs:
                merges = pa.table({"loser": [p[0] for p in pairs], "survivor": [p[1] for p in pairs]})  # noqa: F841
                con.execute(
                    "UPDATE person_aliases SET person_id = m.survivor FROM merges m"
                    " WHERE person_aliases.person_id = m.loser"
                )
                con.execute("INSERT OR REPLACE INTO person_aliases SELECT loser, survivor FROM merges")
            if gone:
                con.execute("DELETE FROM people WHERE list_contains(?, person_id)", [gone])
            if ptbl is not None and ptbl.num_rows:
                con.execute(_INSERT_PEOPLE.format(name="people", source="ptbl"))
            con.execute("INSERT OR REPLACE INTO meta VALUES ('applied_seq', ?)", [seq])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._seq = seq

    # -- rows DuckDB refuses -------------------------------------------------------------

    def _set_aside(
        self, events: pa.Table | None, people: pa.Table | None, batch: AnalyticsBatch
    ) -> tuple[pa.Table | None, pa.Table | None, int]:
        """Find the rows that fail on their own, report them, and return the rest."""
        found = 0
        if events is not None:
            bad = self._failing_rows(events, _EVENTS_DDL, _INSERT_EVENTS)
            for i, reason in bad:
                row = events.slice(i, 1).to_pylist()[0]
                self._reject(Reject("events", row["seq"], row["message_id"], row["person_id"], reason, _row_json(row)))
            events = _without(events, [i for i, _ in bad])
            found += len(bad)
        if people is not None:
            bad = self._failing_rows(people, _PEOPLE_DDL, _INSERT_PEOPLE)
            for i, reason in bad:
                row = people.slice(i, 1).to_pylist()[0]
                self._reject(Reject("people", batch.seq, None, row["person_id"], reason, _row_json(row)))
            people = _without(people, [i for i, _ in bad])
            found += len(bad)
        return events, people, found

    def _failing_rows(self, table: pa.Table, ddl: str, insert: str) -> list[tuple[int, str]]:
        """Rows that fail alone, found by halving; inserts go to an in-memory scratch table."""
        con = self._con
        con.execute("ATTACH IF NOT EXISTS ':memory:' AS probe")
        target = "probe.rows_" + ("events" if "message_id" in table.column_names else "people")
        con.execute(ddl.format(temp="", name=target))
        if target == "probe.rows_events":
            _add_hot_columns(con, target)

        def failure(lo: int, hi: int) -> str | None:
            con.register("probe_source", table.slice(lo, hi - lo))
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(insert.format(name=target, source="probe_source"))
            except duckdb.Error as exc:
                return str(exc).splitlines()[0][:500]
            finally:
                con.execute("ROLLBACK")
                con.unregister("probe_source")
            return None

        bad: list[tuple[int, str]] = []
        todo = [(0, table.num_rows)]
        while todo:
            lo, hi = todo.pop()
            reason = failure(lo, hi)
            if reason is None:
                continue
            if hi - lo == 1:
                bad.append((lo, reason))
            else:
                mid = (lo + hi) // 2
                todo += [(mid, hi), (lo, mid)]
        return sorted(bad)

    def _reject(self, reject: Reject) -> None:
        self.rejected += 1
        try:
            self._on_reject(reject)
        except Exception:  # the quarantine is diagnostics: never let it stop the writer
            log.exception("%s: could not record a rejected row", self.path)

    # -- reading -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        with self._readers_changed:
            if self._closing:
                raise AnalyticsClosed("the analytics store is closing (the workspace is reopening); retry")
            self._readers += 1
        try:
            yield
        finally:
            with self._readers_changed:
                self._readers -= 1
                self._readers_changed.notify_all()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._reading():
            cur = self._con.cursor()
            try:
                return cur.execute(sql, list(params)).fetchall()
            finally:
                cur.close()

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for a sequence of reads (another thread's writes go on)."""
        with self._reading():
            cur = self._con.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._reading():
            cur = self._con.cursor()
            try:
                cur.execute(sql, list(params))
                names = [d[0] for d in cur.description or ()]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            finally:
                cur.close()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the writer, wait for reads in flight, checkpoint and close the file."""
        self._stop = True
        self._wake.set()
        with self._written:  # readers waiting for rows that will not come now: let them go
            self._written.notify_all()
        self._merge_wake.set()
        cur = self._merge_cursor
        if cur is not None:  # a long merge: stop it (its runs stay; the next open merges)
            with contextlib.suppress(Exception):
                cur.interrupt()
        if self._thread is not None:
            self._thread.join(timeout=120)
        if self._merger is not None:
            self._merger.join(timeout=120)
        with self._readers_changed:
            self._closing = True
            if not self._readers_changed.wait_for(lambda: self._readers == 0, timeout):
                log.warning("%s: closing with %d reads still running", self.path, self._readers)
        try:
            self._con.execute("CHECKPOINT")
        except duckdb.Error as exc:  # the WAL holds it all; the next open replays it
            log.warning("%s: no checkpoint on close (%s)", self.path, exc)
        finally:
            self._con.close()


def _forget_events(con: duckdb.DuckDBPyConnection, table: str, ids: list[str], values: list[str]) -> None:
    """Delete the forgotten persons' events from `table`, and other people's conflict
    entries that name them."""
    con.execute(f"DELETE FROM {table} WHERE list_contains(?, person_id)", [ids])
    con.execute(
        f"DELETE FROM {table} WHERE type = 'identity_conflict' AND ("
        " list_contains(?, json_extract_string(properties, '$.person_id'))"
        " OR list_has_any(?, CAST(json_extract(properties, '$.values') AS VARCHAR[])))",
        [ids, values],
    )


def _without(table: pa.Table, rows: list[int]) -> pa.Table:
    if not rows:
        return table
    drop = set(rows)
    return table.filter(pa.array([i not in drop for i in range(table.num_rows)]))


def _row_json(row: dict[str, Any]) -> bytes:
    """A row for admins to read: bytes as text (invalid UTF-8 shown as U+FFFD)."""
    clean = {
        k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v.isoformat() if hasattr(v, "isoformat") else v)
        for k, v in row.items()
    }
    return _json.encode(clean)
