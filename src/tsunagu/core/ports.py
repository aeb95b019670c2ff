"""The seams between the engine and the outside world.

The embedded adapters (SQLite log and state, DuckDB analytics) implement these; the
PostgreSQL, Redis Streams and NATS adapters of the scale-out issue implement the same
Protocols, so the engine and the pipeline never learn which one they talk to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "EVENT_COLUMNS",
    "HOT_PROPERTIES",
    "QUARANTINE_SOURCES",
    "AnalyticsBatch",
    "AnalyticsStore",
    "Backends",
    "Datahub",
    "Deduper",
    "EventLog",
    "LogRecord",
    "OnReject",
    "PersonStore",
    "Quarantine",
    "RecordReader",
    "Reject",
    "StateStore",
    "WorkspaceStores",
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
    """Append-only, group-committed; `append` calls back only after the commit is durable.

    The caller numbers records: seqs grow in the order of the `append` calls (the engine
    applies events in that order before they are logged, so state and log agree), and a
    seq the log already holds is refused. Every read returns records in seq order.
    """

    def append(
        self,
        seq: int,
        kind: str,
        received_at: int,
        body: bytes,
        ids: bytes,
        people: bytes,
        done: Callable[[LogRecord | BaseException], None],
    ) -> None:
        """Queue a record. `done` is called once: with the `LogRecord` when it is durable
        (and readable), or with the exception that kept it from being committed."""
        ...

    def tail(self, after_seq: int, limit: int = 200) -> list[LogRecord]:
        """Like `read`, for the one thread tailing the log (the analytics writer)."""
        ...

    def read(self, after_seq: int, limit: int = 1000) -> list[LogRecord]:
        """Up to `limit` records after `after_seq`."""
        ...

    def read_range(self, after_seq: int, upto_seq: int) -> list[LogRecord]:
        """Every record after `after_seq` up to `upto_seq` included."""
        ...

    def read_seqs(self, seqs: list[int]) -> list[LogRecord]:
        """The records with these seqs (sorted) that the log holds."""
        ...

    def last_seq(self) -> int:
        """The highest committed seq; 0 for an empty log."""
        ...

    def recent_ids(self, since_ms: int) -> Iterator[tuple[int, bytes]]:
        """(received_at, ids) of every `events` record received at or after `since_ms`."""
        ...

    def rewrite(self, seq: int, body: bytes, ids: bytes, people: bytes) -> None:
        """Replace one record's body, ids and people (the right to be forgotten); returns
        once the change is durable."""
        ...

    def close(self) -> None:
        """Commit and acknowledge what was appended before, then let go of the log."""
        ...


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
    """Person state checkpoints: the engine's memory, made durable with the log's seq.

    A checkpoint (`save`) is one transaction: the changed persons, the removed ones, the
    changes to the identity index, the aliases and the timers, and the engine's meta, all
    as of `applied_seq`. A save that fails writes nothing, so the store is never ahead of
    its seq (docs/decisions/0003-person-store.md).
    """

    def load(self) -> tuple[int, Iterator[bytes]]:
        """The seq of the last checkpoint (0 before any) and every person's row."""
        ...

    def load_meta(self) -> dict[str, Any]:
        """The engine's meta as of the last checkpoint that gave one, decoded; {} before."""
        ...

    def read_persons(self, person_ids: Sequence[str]) -> tuple[int, dict[str, Any], list[bytes]]:
        """Some persons' rows (those the store holds, in any order) with the seq and meta
        they belong to, all from one checkpoint."""
        ...

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
        """One checkpoint. `persons` are (person id, row) to write, `removed` person ids to
        delete; `meta` (msgpack of a dict) replaces the previous meta unless empty; in
        `keys` (identifier key -> person id), `aliases` (merged person id -> survivor)
        and `timers` (person id -> day), None deletes the entry. `members` gives persons'
        segments now (their member rows are rewritten; None: none), and
        `dropped_segments` segments whose rows all go (first); removed persons' rows go."""
        ...

    def clear(self) -> None:
        """Forget everything (a checkpoint of an older shape: the log rebuilds it)."""
        ...

    def close(self) -> None: ...


class PersonStore(Protocol):
    """Persons beyond memory, as of the last checkpoint: what `core.store` caches.

    Point reads come from the event loop while a checkpoint is written from a thread; a
    read sees the last committed checkpoint (never half of one).
    """

    def person(self, person_id: str) -> bytes | None: ...

    def persons_after(self, person_id: str, limit: int) -> list[tuple[str, bytes]]:
        """Up to `limit` (person id, row) with an id after `person_id`, in id order."""
        ...

    def count(self) -> int:
        """Persons as of the last checkpoint: kept by the store, O(1) (read at every open)."""
        ...

    def key(self, key: str) -> str | None:
        """The person an identifier key (`user_id:U1`) belongs to."""
        ...

    def keys(self) -> Iterator[tuple[str, str]]: ...

    def alias(self, person_id: str) -> str | None:
        """The person a merged-away person id lives on in."""
        ...

    def aliases(self) -> Iterator[tuple[str, str]]: ...

    def timers_due(self, day: int) -> list[tuple[str, int]]:
        """(person id, day) of the timers for `day` or earlier, in person id order."""
        ...

    def members(self, segment: str, after: str, limit: int) -> list[str]:
        """Up to `limit` ids of the segment's members with an id after `after`, in id order."""
        ...

    def timers(self) -> Iterator[tuple[str, int]]: ...


#: the columns of an `AnalyticsBatch`'s events, in the order of the `events` table
EVENT_COLUMNS = (
    "seq", "message_id", "person_id", "type", "event", "channel", "store_id",
    "timestamp", "received_at", "user_id", "anonymous_id", "properties", "context", "traits",
)  # fmt: skip


#: event properties rules read most, kept by the analytics store as typed columns of
#: `events` named after them, next to the JSON: a column holds the top-level property when
#: its JSON value has the column's type (VARCHAR: a JSON string; DOUBLE: a JSON number, as
#: `TRY_CAST` of its text) and NULL otherwise (missing, null, another type). So a column
#: answers exactly what the JSON path answers only for values of its type; the SQL
#: compilers read it there and the JSON everywhere else (docs/storage.md#hot-properties).
HOT_PROPERTIES: Mapping[str, str] = {"category": "VARCHAR", "sku": "VARCHAR", "revenue": "DOUBLE", "price": "DOUBLE"}


@dataclass
class AnalyticsBatch:
    """What one transaction of the analytics store writes: everything up to log seq `seq`.

    Events are columns (`EVENT_COLUMNS`): times in ms, `properties` and `context` the JSON
    bytes clients sent, `traits` a dict. A person row is (person_id, identifiers, traits,
    first_seen, last_seen, channels, stores, event_count, merged_ids), dicts not yet JSON.
    """

    seq: int
    events: dict[str, list[Any]] = field(default_factory=lambda: {c: [] for c in EVENT_COLUMNS})
    people: list[tuple[Any, ...]] = field(default_factory=list)  # people columns, dicts not yet JSON
    removed: list[str] = field(default_factory=list)  # person ids gone from `people`
    merges: list[tuple[str, str]] = field(default_factory=list)  # (loser, survivor), in order
    forget: list[str] = field(default_factory=list)  # person ids whose events are deleted
    forget_values: list[str] = field(default_factory=list)  # their unique ids, named by others' conflicts

    def __len__(self) -> int:
        return len(self.events["seq"])


#: turns one log record into rows: the pipeline knows the log's encoding, the store doesn't
RecordReader = Callable[[LogRecord, AnalyticsBatch], None]


@dataclass(frozen=True, slots=True)
class Reject:
    """A row the analytics store refused: moved aside, with why."""

    table: str  # events | people
    seq: int | None
    message_id: str | None
    person_id: str | None
    reason: str
    body: bytes  # the row as JSON (its JSON columns as the bytes that failed)


OnReject = Callable[[Reject], None]


class AnalyticsStore(Protocol):
    """Columnar copy of events and people for SQL: written in batches behind the log.

    A batch is written in one transaction with the log seq it covers, so after a crash
    the pipeline knows which records to replay; `applied_seq` is the highest seq written,
    before and after a reopen. The tables are `events`, `people`, `person_aliases` and the
    view `person_events` (docs/storage.md). `query` runs the platform's own SQL (built by
    `tsunagu.sql`, every value a bound parameter): it is not a sandbox for users' SQL and
    promises no read-only access.
    """

    #: the writer's last failure that no row explains; None while writes work
    error: BaseException | None
    #: the `HOT_PROPERTIES` whose columns `events` holds, filled for every row (the SQL
    #: compilers' `hot`); empty for a store that keeps only the JSON
    hot_properties: frozenset[str]

    def applied_seq(self) -> int: ...

    def start(
        self,
        tail: Callable[[int, int], list[LogRecord]],
        reader: RecordReader,
        interval: float,
        on_reject: OnReject | None = None,
    ) -> None:
        """Tail the log from a thread of the store's own: the records after `applied_seq`
        (`tail(after_seq, limit)`) become rows through `reader` and are written with the
        persons handed over, at least every `interval` seconds. A row the store refuses
        goes to `on_reject` and the rest is written."""
        ...

    def hand_over(self, people: list[tuple[Any, ...]], removed: list[str]) -> None:
        """Person rows to upsert, and person ids to delete, with the next write."""
        ...

    def wait_for(self, seq: int, timeout: float = 30.0) -> bool:
        """Block until everything up to `seq` and every person handed over is written (True),
        or a write failed (True: `error` says why); False if neither by `timeout`, or if
        the store closes first."""
        ...

    def write(self, batch: AnalyticsBatch) -> None:
        """Write one batch in one transaction, with the seq it covers."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    def close(self) -> None:
        """Stop the writer and let go of the store; a read after this raises
        `core.errors.Unavailable`."""
        ...


class Quarantine(Protocol):
    """What a workspace could not take, kept with the reason for admins to see.

    An entry is a dict: `id` (grows with each `add`), `at`, `source` (one of
    `QUARANTINE_SOURCES`), `ref`, `reason`, `seq`, `message_id`, `person_id`, `body`.
    """

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
    ) -> list[dict[str, Any]]:
        """The newest entries first, of one `source` if given; `before` (an id) pages on."""
        ...

    def counts(self) -> dict[str, int]:
        """Entries per source (the sources with none are left out)."""
        ...

    def forget(self, person_ids: list[str], message_ids: Sequence[str] = ()) -> int:
        """Delete the entries of these persons or messages; returns how many went."""
        ...

    def close(self) -> None: ...


class Datahub(Protocol):
    """A workspace's Datahub tables (core/datahub.py): imports make versions, a rollback
    makes an old version current again; rows that cannot be read are rejects, never lost.
    Errors the caller made are `core.errors.InvalidInput` / `NotFound` / `Conflict`."""

    timezone: str  # local times in the sources are in this zone (an offset is converted to it)

    def import_delimited(self, name: str, staged: Any, options: Any, now: int, *, source: str = "") -> Any:
        """A CSV/TSV file as `sources.delimited.stage` left it; an `ImportResult`."""
        ...

    def import_parquet(self, name: str, path: Any, options: Any, now: int, *, source: str = "") -> Any: ...

    def import_jsonl(self, name: str, path: Any, options: Any, now: int, *, source: str = "") -> Any: ...

    def import_arrow(self, name: str, reader: Any, options: Any, now: int, *, fmt: str, source: str = "") -> Any:
        """Arrow record batches with a `__line` column (Excel, a database)."""
        ...

    def tables(self) -> list[dict[str, Any]]: ...

    def table(self, name: str) -> dict[str, Any]: ...

    def versions(self, name: str) -> list[dict[str, Any]]: ...

    def rows(self, name: str, *, version: int | None = None, limit: int = 20, offset: int = 0) -> dict[str, Any]: ...

    def rejects(self, name: str, version: int | None = None, *, limit: int = 100, offset: int = 0) -> list[Any]: ...

    def rollback(self, name: str, version: int, now: int) -> dict[str, Any]: ...

    def drop(self, name: str) -> None: ...


class WorkspaceStores(Protocol):
    """One workspace's stores, opened together on its directory."""

    log: EventLog
    state: Any  # a StateStore that is also the PersonStore behind the engine's cache
    analytics: Any  # an AnalyticsStore (the DuckDB one also lends SQL readers: `reader()`)
    datahub: Datahub  # beside the analytics store's tables, so SQL joins the two
    quarantine: Quarantine


class Backends(Protocol):
    """What opens a workspace's stores: `app.py` picks one (the embedded files today;
    PostgreSQL, Redis Streams or NATS at scale) and hands it to every workspace runtime,
    which never names an adapter."""

    name: str

    def deduper(self, directory: Any, window_ms: int) -> Deduper:
        """The messageId de-duplication for a workspace (it reads the log's id index)."""
        ...

    def open(self, directory: Any, deduper: Deduper) -> WorkspaceStores:
        """The workspace's log (writing its ids into `deduper`'s index), state, analytics
        and quarantine; closing is each store's `close`."""
        ...
