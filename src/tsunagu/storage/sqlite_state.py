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

The number of persons is kept in `meta` (`persons`), written in the transaction of each
checkpoint from the rows it actually inserted and deleted, so opening a store of
millions reads one row instead of counting them. `persons_seq` is the `applied_seq` that
figure belongs to: a store without it (written before the figure was kept, or by an
older version since) is counted once at open.

A lookup of a person or an identifier key the store does not hold (a new person, a new
user or anonymous id: most of an import) asks a Bloom filter of the stored keys first
(`storage.key_filter`, files in `<name>-keys/` beside the database) and skips the read
when it says absent; it never says so for a stored key. A checkpoint adds its keys and
syncs the filter before it commits. Opening without a filter that covers the store (the
first open since it is kept, its files lost or stale) builds it from the tables.
Aliases are not filtered: the engine asks for one only after the person id was not
found, which is rare (no alias read at all in `bench/scale.py`'s load).
"""

from __future__ import annotations

import collections
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from .key_filter import KeyFilter

__all__ = ["SqliteStateStore"]

log = logging.getLogger("tsunagu.state")

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
    def __init__(self, path: Path, *, key_filter: bool = True) -> None:
        self.path = path
        self._con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")  # the log is the source of truth
        self._con.executescript(_SCHEMA)
        # A connection of its own for point reads from the event loop while a checkpoint
        # is written from a thread (one sqlite3 connection must not serve two at once).
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._reader_lock = threading.Lock()
        # A first read opens the reader's WAL handle now, not on the first cold lookup: a
        # store holds the same handles from open to close (tests/test_faults.py counts them).
        self._reader.execute("SELECT count(*) FROM meta").fetchone()
        self._fill_members()
        self._persons = self._counted()
        #: lookups by outcome: "person.absent" (the filter answered), "person.missed" (read,
        #: not found: a false positive, or any miss without a filter), "person.found"; the
        #: same for "key.*", and "alias.missed" / "alias.found" (not filtered)
        self.reads: collections.Counter[str] = collections.Counter()
        self.filter: KeyFilter | None = None
        self.filter_built = False  # this open built the filter from the tables (not O(1))
        if key_filter:
            self._open_filter(KeyFilter(path.parent / f"{path.stem}-keys"))

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
        body: bytes | None = self._filtered(
            "person", "p" + person_id, "SELECT body FROM persons WHERE person_id = ?", person_id
        )
        return body

    def _filtered(self, kind: str, filter_key: str, sql: str, arg: str) -> Any:
        kf = self.filter
        if kf is not None and filter_key not in kf:
            self.reads[kind + ".absent"] += 1
            return None
        found = self._one(sql, arg)
        self.reads[kind + (".missed" if found is None else ".found")] += 1
        return found

    def persons_after(self, person_id: str, limit: int) -> list[tuple[str, bytes]]:
        with self._reader_lock:
            return self._reader.execute(
                "SELECT person_id, body FROM persons WHERE person_id > ? ORDER BY person_id LIMIT ?",
                (person_id, limit),
            ).fetchall()

    def key(self, key: str) -> str | None:
        pid: str | None = self._filtered("key", "k" + key, "SELECT person_id FROM ident WHERE key = ?", key)
        return pid

    def alias(self, person_id: str) -> str | None:
        found: str | None = self._one("SELECT survivor FROM alias WHERE person_id = ?", person_id)
        self.reads["alias.missed" if found is None else "alias.found"] += 1
        return found

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
        kf = self.filter
        if kf is not None:
            # Before the commit, so no reader ever finds a stored key absent (a checkpoint
            # that fails leaves false positives only); synced, so a machine crash cannot
            # keep the rows and lose their keys.
            kf.update("p" + pid for pid, _ in persons)
            if keys:
                kf.update("k" + k for k, v in keys.items() if v is not None)
            kf.sync()
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
            self._write_count(n, applied_seq)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._persons = n
        if kf is not None:
            try:
                kf.covers(applied_seq)
            except OSError:  # committed all the same: the next open finds the seq behind and rebuilds
                log.exception("%s: the key filter's seq could not be recorded", self.path)

    def count(self) -> int:
        """Persons in the store as of the last checkpoint (kept in meta, not counted)."""
        return self._persons

    def clear(self) -> None:
        """Forget every person (a checkpoint of an older shape: the log rebuilds them)."""
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        for table in ("persons", "ident", "alias", "timer", "member"):
            con.execute(f"DELETE FROM {table}")
        con.execute("DELETE FROM meta WHERE key != 'members'")  # the (empty) index is current
        self._write_count(0, 0)
        con.execute("COMMIT")
        self._persons = 0
        if self.filter is not None:
            self._build_filter(self.filter)  # empty, under a new token: the old keys go

    def close(self) -> None:
        with self._reader_lock:
            self._reader.close()
        self._con.close()
        if self.filter is not None:
            self.filter.close()

    def stats(self) -> dict[str, int]:
        """The kept count, the lookups by outcome and the filter's size (benchmarks)."""
        return {"persons": self._persons, **self.reads, **(self.filter.stats() if self.filter else {})}

    # -- the key filter ------------------------------------------------------------------

    def _open_filter(self, kf: KeyFilter) -> None:
        meta = dict(self._con.execute("SELECT key, value FROM meta WHERE key IN ('applied_seq', 'key_filter')"))
        token, seq = meta.get("key_filter"), int(meta.get("applied_seq") or 0)
        if not (isinstance(token, str) and kf.open(token, seq)):
            self._build_filter(kf)
        self.filter = kf

    def _build_filter(self, kf: KeyFilter) -> None:
        """Every stored key into new filter files, under a new token. O(persons + keys):
        only when the store has no filter that covers it (see the module's docstring)."""
        con = self._con
        token = os.urandom(8).hex()
        con.execute("BEGIN")  # one snapshot for the keys and the seq they are of
        try:
            seq = int((con.execute("SELECT value FROM meta WHERE key = 'applied_seq'").fetchone() or (0,))[0])
            n = self._persons + con.execute("SELECT count(*) FROM ident").fetchone()[0]
            kf.reset(token, 2 * n)  # room to double before a second filter is needed
            kf.update("k" + k for (k,) in con.execute("SELECT key FROM ident"))
            kf.update("p" + p for (p,) in con.execute("SELECT person_id FROM persons"))
        finally:
            con.execute("COMMIT")
        kf.sync()
        kf.covers(seq)
        # Last: a crash before it leaves the old token, which the new files do not match.
        con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('key_filter', ?)", (token,))
        self.filter_built = True
