"""Person state in SQLite: the person store and its checkpoints.

One row per person (msgpack), the identity index (identifier key -> person id), the
aliases of merged persons and the window-edge timers. Only what changed since the
previous checkpoint is written, with the log seq the state covers, in one transaction;
the engine reads persons, keys and aliases back on demand (`core.store`), and a restart
replays only the log after the checkpoint.

The member index (`member`: segment, person id) answers a segment's members in id order
without reading every person (reports, overlap, CSV). A checkpoint rewrites the rows of
the persons whose memberships changed and drops deleted segments' rows, in the same
transaction as the persons. A store written before the index was kept fills it once at
open from the persons' rows (`meta.members`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["SqliteStateStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS persons (person_id TEXT PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ident (key TEXT PRIMARY KEY, person_id TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alias (person_id TEXT PRIMARY KEY, survivor TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS timer (person_id TEXT PRIMARY KEY, day INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS member (segment TEXT, person_id TEXT, PRIMARY KEY (segment, person_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS member_by_person ON member (person_id);
CREATE INDEX IF NOT EXISTS timer_by_day ON timer (day);
"""


class _Memberships(msgspec.Struct):
    """The one field of a stored person the member index needs (the rest is skipped)."""

    segments: list[str] = []


_memberships = msgspec.msgpack.Decoder(_Memberships)


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
        self._fill_members()

    def _fill_members(self) -> None:
        """A store from before the member index: fill it from the persons' rows, once."""
        con = self._con
        if con.execute("SELECT 1 FROM meta WHERE key = 'members'").fetchone():
            return
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("DELETE FROM member")
            rows = con.execute("SELECT person_id, body FROM persons")
            while batch := rows.fetchmany(10_000):
                pairs = [(seg, pid) for pid, body in batch for seg in _memberships.decode(body).segments]
                con.executemany("INSERT OR IGNORE INTO member (segment, person_id) VALUES (?, ?)", pairs)
            con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('members', 1)")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def members(self, segment: str, after: str, limit: int) -> list[str]:
        """Up to `limit` person ids in `segment` after `after`, in id order (as of the last checkpoint)."""
        with self._reader_lock:
            rows = self._reader.execute(
                "SELECT person_id FROM member WHERE segment = ? AND person_id > ? ORDER BY person_id LIMIT ?",
                (segment, after, limit),
            ).fetchall()
        return [pid for (pid,) in rows]

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

    # -- the person store (core.ports.PersonStore) ----------------------------------------

    def _one(self, sql: str, arg: str) -> Any:
        with self._reader_lock:
            row = self._reader.execute(sql, (arg,)).fetchone()
        return row[0] if row else None

    def person(self, person_id: str) -> bytes | None:
        return self._one("SELECT body FROM persons WHERE person_id = ?", person_id)

    def persons_after(self, person_id: str, limit: int) -> list[tuple[str, bytes]]:
        with self._reader_lock:
            return self._reader.execute(
                "SELECT person_id, body FROM persons WHERE person_id > ? ORDER BY person_id LIMIT ?",
                (person_id, limit),
            ).fetchall()

    def key(self, key: str) -> str | None:
        return self._one("SELECT person_id FROM ident WHERE key = ?", key)

    def alias(self, person_id: str) -> str | None:
        return self._one("SELECT survivor FROM alias WHERE person_id = ?", person_id)

    def _pairs(self, table: str, a: str, b: str) -> Iterator[tuple[str, Any]]:
        after = ""
        while True:
            with self._reader_lock:
                page = self._reader.execute(
                    f"SELECT {a}, {b} FROM {table} WHERE {a} > ? ORDER BY {a} LIMIT 5000", (after,)
                ).fetchall()
            if not page:
                return
            yield from page
            after = page[-1][0]

    def keys(self) -> Iterator[tuple[str, str]]:
        return self._pairs("ident", "key", "person_id")

    def aliases(self) -> Iterator[tuple[str, str]]:
        return self._pairs("alias", "person_id", "survivor")

    def timers(self) -> Iterator[tuple[str, int]]:
        return self._pairs("timer", "person_id", "day")

    def timers_due(self, day: int) -> list[tuple[str, int]]:
        """The timers for `day` or earlier, in person id order (the timer's index by day)."""
        with self._reader_lock:
            return self._reader.execute(
                "SELECT person_id, day FROM timer WHERE day <= ? ORDER BY person_id", (day,)
            ).fetchall()

    # -- checkpoints ---------------------------------------------------------------------

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
        self,
        applied_seq: int,
        persons: Sequence[tuple[str, bytes]],
        removed: Sequence[str],
        meta: bytes = b"",
        keys: Mapping[str, str | None] | None = None,
        aliases: Mapping[str, str | None] | None = None,
        timers: Mapping[str, int | None] | None = None,
        members: Mapping[str, Sequence[str] | None] | None = None,
        dropped_segments: Sequence[str] = (),
    ) -> None:
        """One checkpoint: changed persons, removed ones, and the index, alias and timer
        changes (None: deleted), all as of `applied_seq`, in one transaction."""
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            if removed:
                con.executemany("DELETE FROM persons WHERE person_id = ?", [(r,) for r in removed])
            con.executemany("INSERT OR REPLACE INTO persons (person_id, body) VALUES (?, ?)", persons)
            for table, col, changes in (("ident", "key", keys), ("alias", "person_id", aliases),
                                        ("timer", "person_id", timers)):  # fmt: skip
                if not changes:
                    continue
                gone = [(k,) for k, v in changes.items() if v is None]
                if gone:
                    con.executemany(f"DELETE FROM {table} WHERE {col} = ?", gone)
                kept = [(k, v) for k, v in changes.items() if v is not None]
                con.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)", kept)
            if dropped_segments:
                con.executemany("DELETE FROM member WHERE segment = ?", [(s,) for s in dropped_segments])
            gone = [(pid,) for pid in (*removed, *(members or ()))]
            if gone:  # a person's rows are rewritten whole: removed persons' go
                con.executemany("DELETE FROM member WHERE person_id = ?", gone)
            if members:
                rows = [(seg, pid) for pid, segs in members.items() if segs for seg in segs]
                con.executemany("INSERT OR IGNORE INTO member (segment, person_id) VALUES (?, ?)", rows)
            con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('applied_seq', ?)", (applied_seq,))
            if meta:
                con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('engine', ?)", (meta,))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def count(self) -> int:
        with self._reader_lock:
            return self._reader.execute("SELECT count(*) FROM persons").fetchone()[0]

    def clear(self) -> None:
        """Forget every person (a checkpoint of an older shape: the log rebuilds them)."""
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        for table in ("persons", "ident", "alias", "timer", "member"):
            con.execute(f"DELETE FROM {table}")
        con.execute("DELETE FROM meta WHERE key != 'members'")  # the (empty) index is current
        con.execute("COMMIT")

    def close(self) -> None:
        with self._reader_lock:
            self._reader.close()
        self._con.close()
