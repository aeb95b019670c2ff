"""The event log on SQLite in WAL mode, with group commit.

Every request's events become one row: a msgpack blob of the events, their message ids
(read back to rebuild de-duplication) and the persons the engine gave them (read by the
analytics writer, which tails the log). One writer thread takes every
row queued while the previous commit was on disk and commits them together, so one
fsync serves many requests: durability costs one fsync per group, not per event.
docs/decisions/0001-event-log.md has the measurements behind this choice.

An index (the messageId de-duplication index, `sqlite_dedupe.py`) can be written in the
same transaction as the records it indexes: it is exactly as durable as the log, at no
extra fsync.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from ..core.ports import LogRecord

__all__ = ["LogIndex", "SqliteLog"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    ids BLOB NOT NULL,
    body BLOB NOT NULL,
    people BLOB NOT NULL DEFAULT x''
);
CREATE INDEX IF NOT EXISTS log_received_at ON log (received_at);
"""

Done = Callable[[LogRecord | BaseException], None]
_INSERT = "INSERT INTO log (seq, kind, received_at, ids, body, people) VALUES "
_ROWS_PER_STATEMENT = 500  # 6 parameters a row, well under SQLite's 32,766
_STOP = object()


class LogIndex(Protocol):
    """Written by the log's writer thread: `write` inside a group's transaction, with the
    group's event records as (seq, received_at, ids blob); `committed` once it is durable."""

    def write(self, con: sqlite3.Connection, records: Sequence[tuple[int, int, bytes]]) -> None: ...

    def committed(self, records: Sequence[tuple[int, int, bytes]]) -> None: ...


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    # FULL: the WAL is fsynced at every commit; an ack must survive a power cut.
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA busy_timeout=10000")
    return con


class SqliteLog:
    def __init__(self, path: Path, *, max_group: int = 2000, index: LogIndex | None = None) -> None:
        self.path = path
        self._index = index
        self._max_group = max_group
        self._write = _connect(path)
        self._write.executescript(_SCHEMA)
        self._read = _connect(path)
        self._read_lock = threading.Lock()
        self._tail = _connect(path)  # the analytics writer's own connection
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"log-writer:{path.parent.name}", daemon=True)
        self._thread.start()
        self.commits = 0

    # -- writing -----------------------------------------------------------------------

    def append(self, seq: int, kind: str, received_at: int, body: bytes, ids: bytes, people: bytes, done: Done) -> None:
        """Queue a record; `done` is called from the writer thread once it is durable.

        The caller numbers records (seqs must grow in the order of the calls): the engine
        applies events in that order before they are logged, so state and log agree.
        """
        self._queue.put((seq, kind, received_at, body, ids, people, done))

    def rewrite(self, seq: int, body: bytes, ids: bytes, people: bytes) -> None:
        """Replace one record's body (right to be forgotten). Waits for the commit."""
        finished = threading.Event()
        errors: list[BaseException] = []

        def run(con: sqlite3.Connection) -> None:
            # The caller is let go only after the COMMIT: before, its next read saw the old
            # row, and a failing COMMIT was reported as success (and stopped the writer).
            try:
                con.execute("BEGIN IMMEDIATE")
                try:
                    con.execute("UPDATE log SET body = ?, ids = ?, people = ? WHERE seq = ?", (body, ids, people, seq))
                    con.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        con.execute("ROLLBACK")
                    raise
            except BaseException as exc:  # reported to the caller below
                errors.append(exc)
            finally:
                finished.set()

        self._queue.put(run)
        finished.wait()
        if errors:
            raise errors[0]

    def _run(self) -> None:  # the writer thread
        con = self._write
        q = self._queue
        while True:
            item = q.get()
            group = [item]
            while len(group) < self._max_group:
                try:
                    group.append(q.get_nowait())
                except queue.Empty:
                    break
            stop = any(g is _STOP for g in group)
            group = [g for g in group if g is not _STOP]
            appends = [g for g in group if isinstance(g, tuple)]
            if appends:
                self._commit(con, appends)
            for g in group:
                if callable(g) and not isinstance(g, tuple):
                    g(con)  # in a transaction of its own, reporting its own errors
            if stop:
                return

    def _commit(self, con: sqlite3.Connection, appends: list[tuple]) -> None:
        # One multi-row INSERT per chunk, not one statement per request: every statement
        # releases and retakes the GIL, and retaking it while the event loop is busy can
        # wait a whole switch interval (5 ms), which made group commits slow.
        records = [LogRecord(seq, kind, rat, body, ids, people) for seq, kind, rat, body, ids, people, _ in appends]
        index = self._index
        indexed = [(r[0], r[2], r[4]) for r in appends if r[1] == "events"] if index is not None else []
        try:
            con.execute("BEGIN IMMEDIATE")
            for start in range(0, len(appends), _ROWS_PER_STATEMENT):
                chunk = appends[start : start + _ROWS_PER_STATEMENT]
                sql = _INSERT + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk))
                con.execute(sql, [v for row in chunk for v in (row[0], row[1], row[2], row[4], row[3], row[5])])
            if index is not None and indexed:
                index.write(con, indexed)
            con.execute("COMMIT")
            self.commits += 1
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            for *_, done in appends:
                done(exc)
            return
        if index is not None and indexed:
            index.committed(indexed)  # before the acks: an acknowledged id is known at once
        for rec, (*_, done) in zip(records, appends, strict=True):
            done(rec)

    # -- reading -----------------------------------------------------------------------

    def _select(self, where: str, params: tuple[int, ...], con: sqlite3.Connection | None = None) -> list[LogRecord]:
        sql = f"SELECT seq, kind, received_at, body, ids, people FROM log WHERE {where}"
        if con is not None:
            return [LogRecord(*row) for row in con.execute(sql, params).fetchall()]
        with self._read_lock:
            rows = self._read.execute(sql, params).fetchall()
        return [LogRecord(*row) for row in rows]

    def read(self, after_seq: int, limit: int = 1000) -> list[LogRecord]:
        return self._select("seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))

    def tail(self, after_seq: int, limit: int = 200) -> list[LogRecord]:
        """Like `read`, on a connection of its own, for the one thread tailing the log."""
        return self._select("seq > ? ORDER BY seq LIMIT ?", (after_seq, limit), self._tail)

    def read_range(self, after_seq: int, upto_seq: int) -> list[LogRecord]:
        return self._select("seq > ? AND seq <= ? ORDER BY seq", (after_seq, upto_seq))

    def read_seqs(self, seqs: list[int]) -> list[LogRecord]:
        return [rec for seq in seqs for rec in self._select("seq = ?", (seq,))]

    def last_seq(self) -> int:
        with self._read_lock:
            row = self._read.execute("SELECT max(seq) FROM log").fetchone()
        return row[0] or 0

    def count(self) -> int:
        with self._read_lock:
            return self._read.execute("SELECT count(*) FROM log").fetchone()[0]

    def recent_ids(self, since_ms: int) -> Iterator[tuple[int, bytes]]:
        with self._read_lock:
            rows = self._read.execute(
                "SELECT received_at, ids FROM log WHERE received_at >= ? AND kind = 'events'", (since_ms,)
            ).fetchall()
        yield from rows

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        self._write.close()
        self._read.close()
        self._tail.close()
