"""One contract suite per port (`core/ports.py`), run on every backend of that port.

Each port below has a list of factories, one entry per backend (in the manner of dlt's
`destinations_configs()`). A factory opens its backend at a *place*: a fresh directory
under `tmp_path` that an embedded backend fills with its files, and whose name a server
backend (PostgreSQL, Redis, NATS) turns into a database, schema or stream prefix of its
own. Opening the same place again is the reopen hook the durability tests use: close,
open again, see the same state.

A new backend joins a suite by adding one `Factory` to its port's list; the tests speak
only through the port's methods, so they run on it unchanged.
"""

from __future__ import annotations

import inspect
import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import msgspec
import pytest

from tsunagu.core.ports import AnalyticsStore, Deduper, EventLog, LogRecord, PersonStore, Quarantine, StateStore
from tsunagu.storage.duckdb_analytics import DuckDBAnalytics
from tsunagu.storage.sqlite_dedupe import SqliteDeduper
from tsunagu.storage.sqlite_log import SqliteLog
from tsunagu.storage.sqlite_quarantine import SqliteQuarantine
from tsunagu.storage.sqlite_state import SqliteStateStore

S = TypeVar("S")

#: the de-duplication window every deduper factory opens with (ten minutes)
DEDUPE_WINDOW_MS = 600_000
#: how long a test waits for a backend's thread before it calls the backend stuck
WAIT_S = 30.0


def _close(store: Any) -> None:
    store.close()


@dataclass(frozen=True)
class Factory(Generic[S]):
    """How to open one backend of a port at a place, and how to close it."""

    name: str
    open: Callable[[Path], S]
    close: Callable[[S], None] = _close


class Opened(Generic[S]):
    """A backend open at one place, with the reopen hook."""

    def __init__(self, factory: Factory[S], place: Path) -> None:
        place.mkdir(parents=True, exist_ok=True)
        self.factory = factory
        self.place = place
        self.store: S = factory.open(place)
        self._open = True

    def reopen(self) -> S:
        """Close the store and open it again from the same place: what a restart sees."""
        self.close()
        self.store = self.factory.open(self.place)
        self._open = True
        return self.store

    def close(self) -> None:
        if self._open:
            self._open = False
            self.factory.close(self.store)


class PersonStateStore(StateStore, PersonStore, Protocol):
    """The person store and its checkpoints: one object in every backend so far."""


@dataclass
class LoggedDeduper:
    """A deduper with the log its ids become durable in: an id survives a restart once
    the log record holding it is committed, so the suite commits through that log."""

    deduper: Deduper
    log: EventLog

    def commit(self, ids: list[str], received_at: int) -> LogRecord:
        """Log one `events` record holding `ids` (msgpack), as the pipeline does, and wait."""
        done: queue.SimpleQueue[LogRecord | BaseException] = queue.SimpleQueue()
        seq = self.log.last_seq() + 1
        self.log.append(seq, "events", received_at, b"", msgspec.msgpack.encode(ids), b"", done.put)
        result = done.get(timeout=WAIT_S)
        assert isinstance(result, LogRecord), result
        return result

    def close(self) -> None:
        self.log.close()  # first, as the pipeline does: its writer thread writes the index
        self.deduper.close()


def _sqlite_deduper(**options: Any) -> Callable[[Path], LoggedDeduper]:
    def open_(place: Path) -> LoggedDeduper:
        deduper = SqliteDeduper(place / "dedupe", place / "log.sqlite", DEDUPE_WINDOW_MS, **options)
        return LoggedDeduper(deduper, SqliteLog(place / "log.sqlite", index=deduper))

    return open_


# -- the backends: one entry each -----------------------------------------------------------

EVENT_LOGS: list[Factory[EventLog]] = [
    Factory("sqlite", lambda place: SqliteLog(place / "log.sqlite")),
]
PERSON_STORES: list[Factory[PersonStateStore]] = [
    Factory("sqlite", lambda place: SqliteStateStore(place / "state.sqlite")),
]
ANALYTICS_STORES: list[Factory[AnalyticsStore]] = [
    Factory("duckdb", lambda place: DuckDBAnalytics(place / "analytics.duckdb", memory_limit="256MB")),
]
DEDUPERS: list[Factory[LoggedDeduper]] = [
    # three ids in memory: most answers come from the Bloom filters and the index tables
    Factory("sqlite", _sqlite_deduper(memory_ids=3)),
    # crowded filters: most new ids hit one and are confirmed on disk
    Factory("sqlite-crowded-filters", _sqlite_deduper(memory_ids=3, error_rate=0.6)),
]
QUARANTINES: list[Factory[Quarantine]] = [
    Factory("sqlite", lambda place: SqliteQuarantine(place / "quarantine.sqlite")),
]


def _name(factory: Factory[Any]) -> str:
    return factory.name


def _opened(factory: Factory[S], place: Path) -> Iterator[Opened[S]]:
    opened = Opened(factory, place)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(params=EVENT_LOGS, ids=_name)
def event_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opened[EventLog]]:
    yield from _opened(request.param, tmp_path / "event_log")


@pytest.fixture(params=PERSON_STORES, ids=_name)
def person_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opened[PersonStateStore]]:
    yield from _opened(request.param, tmp_path / "person_store")


@pytest.fixture(params=ANALYTICS_STORES, ids=_name)
def analytics(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opened[AnalyticsStore]]:
    yield from _opened(request.param, tmp_path / "analytics")


@pytest.fixture(params=DEDUPERS, ids=_name)
def deduper_factory(request: pytest.FixtureRequest) -> Factory[LoggedDeduper]:
    """The factory itself, for tests that open many fresh places (one per example)."""
    factory: Factory[LoggedDeduper] = request.param
    return factory


@pytest.fixture
def deduper(deduper_factory: Factory[LoggedDeduper], tmp_path: Path) -> Iterator[Opened[LoggedDeduper]]:
    yield from _opened(deduper_factory, tmp_path / "deduper")


@pytest.fixture(params=QUARANTINES, ids=_name)
def quarantine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opened[Quarantine]]:
    yield from _opened(request.param, tmp_path / "quarantine")


# -- the port's shape -------------------------------------------------------------------------


def unlike_port(store: object, port: type) -> list[str]:
    """How `store` differs from what `port` declares: a missing method or attribute, a
    parameter the port passes that the method lacks (by name, position, or default), or
    a parameter the method needs that the port never passes. [] when it conforms."""
    problems: list[str] = []
    for attribute in getattr(port, "__annotations__", {}):
        if not hasattr(store, attribute):
            problems.append(f"no attribute {attribute!r}")
    for name, declared in vars(port).items():
        if name.startswith("_") or not callable(declared):
            continue
        method = getattr(store, name, None)
        if not callable(method):
            problems.append(f"{name}: missing")
            continue
        want = list(inspect.signature(declared).parameters.values())[1:]  # without self
        got = inspect.signature(method).parameters
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        want_positional = [p.name for p in want if p.kind in positional]
        got_positional = [p.name for p in got.values() if p.kind in positional]
        if got_positional[: len(want_positional)] != want_positional:
            problems.append(f"{name}: positional parameters {got_positional}, the port passes {want_positional}")
        for p in want:
            q = got.get(p.name)
            if q is None:
                problems.append(f"{name}: no parameter {p.name!r}")
            elif p.default is not p.empty and q.default is q.empty:
                problems.append(f"{name}: {p.name!r} needs a default (the port may leave it out)")
        for q in got.values():
            required = q.default is q.empty and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)
            if required and q.name not in {p.name for p in want}:
                problems.append(f"{name}: needs {q.name!r}, which the port never passes")
    return problems
