"""The embedded backends: one workspace's stores as files in its directory.

    log.sqlite         the event log (and the messageId index the deduper reads)
    dedupe/            the deduper's filters and older ids
    state.sqlite       person state checkpoints, the person store, identity index, timers
    analytics.duckdb   events and people for SQL
    quarantine.sqlite  what the workspace could not take

`app.py` picks these (`EMBEDDED`); a workspace runtime only sees the ports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.ports import Deduper
from .duckdb_analytics import DuckDBAnalytics
from .duckdb_datahub import DuckDBDatahub
from .sqlite_dedupe import SqliteDeduper
from .sqlite_log import SqliteLog
from .sqlite_quarantine import SqliteQuarantine
from .sqlite_state import SqliteStateStore

__all__ = ["EmbeddedBackends", "EmbeddedStores"]


@dataclass
class EmbeddedStores:
    log: SqliteLog
    state: SqliteStateStore
    analytics: DuckDBAnalytics
    quarantine: SqliteQuarantine

    @property
    def datahub(self) -> DuckDBDatahub:
        return self.analytics.datahub


class EmbeddedBackends:
    name = "embedded"

    def __init__(self, *, key_filter: bool = True) -> None:
        self.key_filter = key_filter  # the person store's Bloom filter of stored keys (on unless measuring)

    def deduper(self, directory: Path, window_ms: int) -> SqliteDeduper:
        return SqliteDeduper(directory / "dedupe", directory / "log.sqlite", window_ms)

    def open(self, directory: Path, deduper: Deduper) -> EmbeddedStores:
        opened: list[object] = []
        try:
            log = SqliteLog(directory / "log.sqlite", index=deduper)  # type: ignore[arg-type]
            opened.append(log)
            state = SqliteStateStore(directory / "state.sqlite", key_filter=self.key_filter)
            opened.append(state)
            analytics = DuckDBAnalytics(directory / "analytics.duckdb")
            opened.append(analytics)
            quarantine = SqliteQuarantine(directory / "quarantine.sqlite")
        except BaseException:
            for store in reversed(opened):
                store.close()  # type: ignore[attr-defined]
            raise
        return EmbeddedStores(log, state, analytics, quarantine)
