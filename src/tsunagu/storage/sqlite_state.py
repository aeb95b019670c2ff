"""Person state in SQLite: the person store and its checkpoints.

One row per person (msgpack), the identity index (identifier key -> person id), the
aliases of merged persons and the window-edge timers. Only what changed since the
previous checkpoint is written, with the log seq the state covers, in one transaction;
the engine reads persons, keys and aliases back on demand (`core.store`), and a restart
replays only the log after the checkpoint.

The number of persons is kept in `meta` (`persons`), written in the transaction of each
checkpoint from the rows it actually inserted and deleted, so opening a store of
millions reads one row instead of counting them. `persons_seq` is the `applied_seq` that
figure belongs to: a store without it (written before the figure was kept, or by an
older version since) is counted once at open.
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
        self._persons = self._counted()

    def _counted(self) -> int:
        """The number of persons from meta; counted once if meta has no figure for the
        store's seq (a store written before the figure was kept, or by an older version)."""
        con = self._con
        meta = dict(con.execute("SELECT key, value FROM meta WHERE key IN ('applied_seq', 'persons', 'persons_seq')"))
        seq = int(meta.get("applied_seq") or 0)
        if isinstance(meta.get("persons"), int) and meta.get("persons_seq") == seq:
            return int(meta["persons"])
        con.execute("BEGIN IMMEDIATE")
        try:
            n = int(con.execute("SELECT count(*) FROM persons").fetchone()[0])
            self._write_count(n, seq)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return n

    def _write_count(self, n: int, seq: int) -> None:
        self._con.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [("persons", n), ("persons_seq", seq)]
        )

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
    ) -> None:
        """One checkpoint: changed persons, removed ones, and the index, alias and timer
        changes (None: deleted), all as of `applied_seq`, in one transaction."""
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            n = self._persons
            if removed:
                n -= con.executemany("DELETE FROM persons WHERE person_id = ?", [(r,) for r in removed]).rowcount
            if persons:
                # Update first, then insert what is not there: the insert's row count is the
                # number of new persons (INSERT OR REPLACE counts every row).
                con.executemany("UPDATE persons SET body = ? WHERE person_id = ?", [(b, p) for p, b in persons])
                n += con.executemany("INSERT OR IGNORE INTO persons (person_id, body) VALUES (?, ?)", persons).rowcount
            for table, col, changes in (("ident", "key", keys), ("alias", "person_id", aliases),
                                        ("timer", "person_id", timers)):  # fmt: skip
                if not changes:
                    continue
                gone = [(k,) for k, v in changes.items() if v is None]
                if gone:
                    con.executemany(f"DELETE FROM {table} WHERE {col} = ?", gone)
                kept = [(k, v) for k, v in changes.items() if v is not None]
                con.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)", kept)
            con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('applied_seq', ?)", (applied_seq,))
            if meta:
                con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('engine', ?)", (meta,))
            self._write_count(n, applied_seq)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._persons = n

    def count(self) -> int:
        """Persons in the store as of the last checkpoint (kept in meta, not counted)."""
        return self._persons

    def clear(self) -> None:
        """Forget every person (a checkpoint of an older shape: the log rebuilds them)."""
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        for table in ("persons", "ident", "alias", "timer", "meta"):
            con.execute(f"DELETE FROM {table}")
        self._write_count(0, 0)
        con.execute("COMMIT")
        self._persons = 0

    def close(self) -> None:
        with self._reader_lock:
            self._reader.close()
        self._con.close()
