"""The quarantine: what a workspace could not take, kept for admins to see and fix.

Four sources put things here, each with the reason and a reference the server log
repeats: `engine` (an event the engine failed on: refused to its client, kept here),
`analytics` (a row the analytics writer could not write: skipped there, still in the
log) and `checkpoint` (a person whose state had to be adjusted to be checkpointed) and
`definition` (a stored definition the current parser refuses: skipped when the
workspace opens, so the workspace still opens).
Entries carry the person where one is known, so forgetting a person removes theirs.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.ports import QUARANTINE_SOURCES as SOURCES

__all__ = ["SOURCES", "SqliteQuarantine"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,           -- when it was put here (ms)
    source TEXT NOT NULL,          -- engine | analytics | checkpoint | definition
    ref TEXT NOT NULL,             -- the reference the server log and the client's answer give
    reason TEXT NOT NULL,
    seq INTEGER,                   -- the log record, for analytics rows
    message_id TEXT,
    person_id TEXT,
    body BLOB NOT NULL DEFAULT x'' -- the event or row as JSON (maybe not valid UTF-8)
);
CREATE INDEX IF NOT EXISTS quarantine_person ON quarantine (person_id);
"""


class SqliteQuarantine:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")  # diagnostics, not acknowledged data
        self._con.executescript(_SCHEMA)
        self._lock = threading.Lock()  # the event loop and the analytics thread both write

    def add(
        self,
        source: str,
        ref: str,
        *,
        reason: str,
        at: int,
        seq: int | None = None,
        message_id: str | None = None,
        person_id: str | None = None,
        body: bytes = b"",
    ) -> None:
        with self._lock:
            self._con.execute(
                "INSERT INTO quarantine (at, source, ref, reason, seq, message_id, person_id, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (at, source, ref, reason[:2000], seq, message_id, person_id, body),
            )

    def entries(
        self, *, limit: int = 100, source: str | None = None, before: int | None = None
    ) -> list[dict[str, Any]]:
        """The newest entries first; `before` (an id) pages on."""
        where: list[str] = []
        params: list[Any] = []
        if source is not None:
            where.append("source = ?")
            params.append(source)
        if before is not None:
            where.append("id < ?")
            params.append(before)
        sql = "SELECT id, at, source, ref, reason, seq, message_id, person_id, body FROM quarantine"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._con.execute(sql, [*params, limit]).fetchall()
        names = ("id", "at", "source", "ref", "reason", "seq", "message_id", "person_id", "body")
        return [dict(zip(names, row, strict=True)) for row in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._con.execute("SELECT source, count(*) FROM quarantine GROUP BY source").fetchall()
        return {source: n for source, n in rows}

    def forget(self, person_ids: list[str], message_ids: Sequence[str] = ()) -> int:
        """Delete the entries of forgotten persons (by person or by message id)."""
        with self._lock:
            n = 0
            for column, values in (("person_id", person_ids), ("message_id", list(message_ids))):
                for start in range(0, len(values), 500):
                    chunk = values[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    n += self._con.execute(f"DELETE FROM quarantine WHERE {column} IN ({marks})", chunk).rowcount
            return n

    def close(self) -> None:
        with self._lock:
            self._con.close()
