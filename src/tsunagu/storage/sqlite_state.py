"""Person-state checkpoints in SQLite: one row per person, written incrementally.

Only persons changed since the previous checkpoint are written, with the log seq the
state covers, in one transaction; a restart loads them and replays the log after it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["SqliteStateStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS persons (person_id TEXT PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
"""


class SqliteStateStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")  # the log is the source of truth
        self._con.executescript(_SCHEMA)
        # A connection of its own for point reads from the event loop while a checkpoint
        # is written from a thread (one sqlite3 connection must not serve two at once).
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._reader_lock = threading.Lock()

    def read_persons(self, person_ids: Sequence[str]) -> tuple[int, dict[str, Any], list[bytes]]:
        """Some persons' rows with the seq and meta they belong to, from one snapshot."""
        with self._reader_lock:
            con = self._reader
            con.execute("BEGIN")
            try:
                row = con.execute("SELECT value FROM meta WHERE key = 'applied_seq'").fetchone()
                meta_row = con.execute("SELECT value FROM meta WHERE key = 'engine'").fetchone()
                bodies: list[bytes] = []
                ids = list(person_ids)
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    bodies += [
                        b for (b,) in con.execute(f"SELECT body FROM persons WHERE person_id IN ({marks})", chunk)
                    ]
            finally:
                con.execute("COMMIT")
        meta = msgspec.msgpack.decode(meta_row[0]) if meta_row and meta_row[0] else {}
        return (int(row[0]) if row else 0), meta, bodies

    def load(self) -> tuple[int, Iterator[bytes]]:
        row = self._con.execute("SELECT value FROM meta WHERE key = 'applied_seq'").fetchone()
        seq = int(row[0]) if row else 0

        def bodies() -> Iterator[bytes]:
            cur = self._con.execute("SELECT body FROM persons")
            while chunk := cur.fetchmany(10_000):
                for (body,) in chunk:
                    yield body

        return seq, bodies()

    def load_meta(self) -> dict[str, Any]:
        """What the engine keeps besides persons (definitions, back-fill state), msgpack."""
        row = self._con.execute("SELECT value FROM meta WHERE key = 'engine'").fetchone()
        return msgspec.msgpack.decode(row[0]) if row and row[0] else {}

    def save(
        self, applied_seq: int, persons: Sequence[tuple[str, bytes]], removed: Sequence[str], meta: bytes = b""
    ) -> None:
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            if removed:
                con.executemany("DELETE FROM persons WHERE person_id = ?", [(r,) for r in removed])
            con.executemany("INSERT OR REPLACE INTO persons (person_id, body) VALUES (?, ?)", persons)
            con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('applied_seq', ?)", (applied_seq,))
            if meta:
                con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('engine', ?)", (meta,))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def count(self) -> int:
        return self._con.execute("SELECT count(*) FROM persons").fetchone()[0]

    def close(self) -> None:
        with self._reader_lock:
            self._reader.close()
        self._con.close()
