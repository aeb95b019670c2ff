"""The analytics store on DuckDB: events, people and aliases as tables for SQL.

Written in batches behind the log by one thread (DuckDB likes few large appends), with
the log seq the batch covers stored in the same transaction, so after a crash the
pipeline knows exactly which log records to replay into it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

__all__ = ["EVENT_COLUMNS", "AnalyticsBatch", "DuckDBAnalytics"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
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
CREATE TABLE IF NOT EXISTS people (
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
-- every person id that was merged away, and the person it lives on in
CREATE TABLE IF NOT EXISTS person_aliases (alias VARCHAR PRIMARY KEY, person_id VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT);
CREATE OR REPLACE VIEW person_events AS
    SELECT coalesce(a.person_id, e.person_id) AS canonical_person_id, e.*
    FROM events e LEFT JOIN person_aliases a ON a.alias = e.person_id;
"""

EVENT_COLUMNS = (
    "seq", "message_id", "person_id", "type", "event", "channel", "store_id",
    "timestamp", "received_at", "user_id", "anonymous_id", "properties", "context", "traits",
)  # fmt: skip

_TS = pa.timestamp("ms", tz="UTC")
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
        ("properties", pa.string()),
        ("context", pa.string()),
        ("traits", pa.string()),
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


@dataclass
class AnalyticsBatch:
    """One hand-over from the engine: everything up to log seq `seq`."""

    seq: int
    events: list[tuple[Any, ...]] = field(default_factory=list)  # EVENT_COLUMNS, dicts not yet JSON
    people: list[tuple[Any, ...]] = field(default_factory=list)  # people columns, dicts not yet JSON
    removed: list[str] = field(default_factory=list)  # person ids gone from `people`
    merges: list[tuple[str, str]] = field(default_factory=list)  # (loser, survivor), in order
    forget: list[str] = field(default_factory=list)  # person ids whose events are deleted


def _events_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    cols = list(zip(*rows, strict=True))
    enc = _json.encode
    for i in (11, 12, 13):
        cols[i] = [enc(v).decode() for v in cols[i]]
    return pa.Table.from_arrays(
        [pa.array(c, type=t) for c, t in zip(cols, _EVENT_SCHEMA.types, strict=True)], schema=_EVENT_SCHEMA
    )


def _people_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    cols = list(zip(*rows, strict=True))
    enc = _json.encode
    for i in (1, 2, 5, 6):
        cols[i] = [enc(v).decode() for v in cols[i]]
    return pa.Table.from_arrays(
        [pa.array(c, type=t) for c, t in zip(cols, _PEOPLE_SCHEMA.types, strict=True)], schema=_PEOPLE_SCHEMA
    )


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
    def __init__(self, path: Path) -> None:
        self.path = path
        self._con = duckdb.connect(str(path))
        self._con.execute(_SCHEMA)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._seq = self._read_seq()
        self._thread = threading.Thread(target=self._run, name=f"analytics:{path.parent.name}", daemon=True)
        self._thread.start()
        self.error: BaseException | None = None

    def _read_seq(self) -> int:
        row = self._con.execute("SELECT value FROM meta WHERE key = 'applied_seq'").fetchone()
        return int(row[0]) if row else 0

    def applied_seq(self) -> int:
        return self._seq

    # -- writing -----------------------------------------------------------------------

    def submit(self, batch: AnalyticsBatch, done: Callable[[BaseException | None], None] | None = None) -> None:
        self._queue.put((batch, done))

    def write(self, batch: AnalyticsBatch) -> None:
        """Write one batch synchronously (the writer thread, recovery and tests)."""
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            if batch.events:
                tbl = _events_table(batch.events)  # noqa: F841  (read by name below)
                con.execute("INSERT INTO events SELECT * FROM tbl")
            if batch.forget:
                # After the insert: events of the forgotten ids still in this batch go too.
                ids = batch.forget
                con.execute("DELETE FROM events WHERE list_contains(?, person_id)", [ids])
                con.execute(
                    "DELETE FROM person_aliases WHERE list_contains(?, alias) OR list_contains(?, person_id)",
                    [ids, ids],
                )
                con.execute("DELETE FROM people WHERE list_contains(?, person_id)", [ids])
            if batch.merges:
                pairs = _final_survivors(batch.merges)
                losers = [p[0] for p in pairs]
                merges = pa.table({"loser": losers, "survivor": [p[1] for p in pairs]})  # noqa: F841
                con.execute(
                    "UPDATE person_aliases SET person_id = m.survivor FROM merges m WHERE person_aliases.person_id = m.loser"
                )
                con.execute("INSERT OR REPLACE INTO person_aliases SELECT loser, survivor FROM merges")
            removed = list({*batch.removed, *(p[0] for p in _final_survivors(batch.merges))})
            if removed:
                con.execute("DELETE FROM people WHERE list_contains(?, person_id)", [removed])
            if batch.people:
                ptbl = _people_table(batch.people)  # noqa: F841
                con.execute("INSERT OR REPLACE INTO people SELECT * FROM ptbl")
            con.execute("INSERT OR REPLACE INTO meta VALUES ('applied_seq', ?)", [batch.seq])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._seq = max(self._seq, batch.seq)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch, done = item
            try:
                self.write(batch)
            except BaseException as exc:  # keep the thread alive; the log still has it all
                self.error = exc
                if done:
                    done(exc)
                continue
            if done:
                done(None)

    # -- reading -----------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._con.cursor()
        try:
            return cur.execute(sql, list(params)).fetchall()
        finally:
            cur.close()

    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self._con.cursor()
        try:
            cur.execute(sql, list(params))
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            cur.close()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)
        self._con.execute("CHECKPOINT")
        self._con.close()
