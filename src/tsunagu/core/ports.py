"""The seams between the engine and the outside world.

The embedded adapters (SQLite log and state, DuckDB analytics) implement these; the
PostgreSQL, Redis Streams and NATS adapters of the scale-out issue implement the same
Protocols, so the engine and the pipeline never learn which one they talk to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "QUARANTINE_SOURCES",
    "AnalyticsStore",
    "Deduper",
    "EventLog",
    "LogRecord",
    "PersonStore",
    "Quarantine",
    "StateStore",
]

#: where what a workspace could not take comes from (docs/storage.md#the-quarantine)
QUARANTINE_SOURCES = ("engine", "analytics", "checkpoint", "definition")


@dataclass(slots=True)
class LogRecord:
    """One entry of the event log: a request's accepted events, or a control record."""

    seq: int
    kind: str  # "events" | "forget" | "define" | "undefine" | "backfill" | "tick"
    received_at: int
    body: bytes  # msgpack: list[Event] for "events", a dict for "forget"
    ids: bytes = b""  # msgpack list of the message ids in body (for de-duplication)
    people: bytes = b""  # msgpack (person ids, one per event; timeline markers) from the engine


class EventLog(Protocol):
    """Append-only, group-committed; `append` calls back only after the commit is durable."""

    def append(
        self,
        seq: int,
        kind: str,
        received_at: int,
        body: bytes,
        ids: bytes,
        people: bytes,
        done: Callable[[LogRecord | BaseException], None],
    ) -> None: ...

    def tail(self, after_seq: int, limit: int = 200) -> list[LogRecord]: ...

    def read(self, after_seq: int, limit: int = 1000) -> list[LogRecord]: ...

    def last_seq(self) -> int: ...

    def recent_ids(self, since_ms: int) -> Iterator[tuple[int, bytes]]: ...

    def rewrite(self, seq: int, body: bytes, ids: bytes, people: bytes) -> None: ...

    def close(self) -> None: ...


class Deduper(Protocol):
    """messageId de-duplication over a window: exact, so a new event is never dropped.

    An id added at `t` is known while `t >= now - window`, `now` being the latest time
    given to `advance` or `add`. `add` takes the ids of a request before it is logged,
    so a concurrent retry is caught before the commit; `discard` takes back ids of that
    request that were refused (they never reach the log), so a fixed retry is welcome.
    An id survives a restart once the log record holding it is committed.
    """

    def open(self, now: int) -> None: ...

    def advance(self, now: int) -> None: ...

    def seen(self, message_id: str) -> bool: ...

    def add(self, message_ids: Iterable[str], now: int) -> None: ...

    def discard(self, message_ids: Iterable[str]) -> None: ...

    def checkpoint(self) -> None: ...

    def close(self) -> None: ...


class StateStore(Protocol):
    """Person state checkpoints: the engine's memory, made durable with the log's seq."""

    def load(self) -> tuple[int, Iterator[bytes]]: ...

    def load_meta(self) -> dict[str, Any]: ...

    def save(
        self, applied_seq: int, persons: Sequence[tuple[str, bytes]], removed: Sequence[str], meta: bytes = b""
    ) -> None: ...

    def close(self) -> None: ...


class PersonStore(Protocol):
    """Persons beyond memory, as of the last checkpoint: what `core.store` caches.

    Point reads come from the event loop while a checkpoint is written from a thread; a
    read sees the last committed checkpoint (never half of one).
    """

    def person(self, person_id: str) -> bytes | None: ...

    def persons_after(self, person_id: str, limit: int) -> list[tuple[str, bytes]]: ...

    def count(self) -> int:
        """Persons as of the last checkpoint: kept by the store, O(1) (read at every open)."""
        ...

    def key(self, key: str) -> str | None: ...

    def keys(self) -> Iterator[tuple[str, str]]: ...

    def alias(self, person_id: str) -> str | None: ...

    def aliases(self) -> Iterator[tuple[str, str]]: ...

    def timers(self) -> Iterator[tuple[str, int]]: ...


class AnalyticsStore(Protocol):
    """Columnar copy of events and people for SQL: written in batches behind the log."""

    def applied_seq(self) -> int: ...

    def write(self, batch: Any) -> None: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


class Quarantine(Protocol):
    """What a workspace could not take, kept with the reason for admins to see."""

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
    ) -> None: ...

    def entries(
        self, *, limit: int = 100, source: str | None = None, before: int | None = None
    ) -> list[dict[str, Any]]: ...

    def counts(self) -> dict[str, int]: ...

    def forget(self, person_ids: list[str], message_ids: Sequence[str] = ()) -> int: ...

    def close(self) -> None: ...
