"""One workspace's ingest pipeline: de-duplicate, log, apply, hand over to analytics.

    API ──events──▶ dedupe ──▶ log (group commit, fsync) ──commit──▶ engine.apply
                                                                   │
                          analytics (DuckDB, batches) ◀──rows──────┘
                          state checkpoints (SQLite)  ◀──dirty persons (every 30 s)

The engine runs on the event loop, in log order, right after each commit and before the
request is answered: an acknowledged event is durable *and* already on its person.
Analytics and checkpoints trail behind; both record the log seq they cover, so a restart
replays exactly the tail each of them misses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from .core.config import WorkspaceConfig
from .core.dedupe import DAY_MS, Deduper
from .core.engine import Applied, Engine
from .core.errors import NotFound, Unavailable
from .core.events import Event
from .core.people import Person
from .core.ports import LogRecord
from .storage.duckdb_analytics import AnalyticsBatch, DuckDBAnalytics
from .storage.sqlite_log import SqliteLog
from .storage.sqlite_state import SqliteStateStore

__all__ = ["Accepted", "WorkspacePipeline"]

log = logging.getLogger("tsunagu.pipeline")

_events_encoder = msgspec.msgpack.Encoder()
_events_decoder = msgspec.msgpack.Decoder(list[Event])
_ids_decoder = msgspec.msgpack.Decoder(list[str])
_person_decoder = msgspec.msgpack.Decoder(Person)
_forget_decoder = msgspec.msgpack.Decoder(dict[str, list[str]])


@dataclass(slots=True)
class Accepted:
    accepted: int
    duplicates: int
    seq: int


class WorkspacePipeline:
    """Owns one workspace's log, engine, analytics store and checkpoints."""

    def __init__(
        self,
        workspace: str,
        directory: Path,
        config: WorkspaceConfig,
        *,
        flush_interval: float = 0.1,
        checkpoint_interval: float = 30.0,
    ) -> None:
        self.workspace = workspace
        self.directory = directory
        self.config = config
        self.flush_interval = flush_interval
        self.checkpoint_interval = checkpoint_interval
        self.engine = Engine(config)
        self.deduper = Deduper(config.dedupe_days)
        self.applied_seq = 0
        self._pending_rows: list[tuple[Any, ...]] = []
        self._pending_merges: list[tuple[str, str]] = []
        self._pending_forget: list[str] = []
        self._log: SqliteLog | None = None
        self._state: SqliteStateStore | None = None
        self._analytics: DuckDBAnalytics | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._flush_lock = asyncio.Lock()
        self._checkpoint_lock = asyncio.Lock()
        self._last_checkpoint_seq = 0
        self.stats = {"accepted": 0, "duplicates": 0, "replayed": 0}

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def log(self) -> SqliteLog:
        assert self._log is not None, "pipeline is not open"
        return self._log

    @property
    def analytics(self) -> DuckDBAnalytics:
        assert self._analytics is not None, "pipeline is not open"
        return self._analytics

    async def open(self, now: int, *, background: bool = True) -> None:
        """Open the stores and recover: load the checkpoint, replay the log tail."""
        self._loop = asyncio.get_running_loop()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log = SqliteLog(self.directory / "log.sqlite")
        self._state = SqliteStateStore(self.directory / "state.sqlite")
        self._analytics = DuckDBAnalytics(self.directory / "analytics.duckdb")
        await asyncio.to_thread(self._recover, now)
        if background:
            self._tasks = [
                asyncio.create_task(self._every(self.flush_interval, self.flush), name="flush"),
                asyncio.create_task(self._every(self.checkpoint_interval, self.checkpoint), name="checkpoint"),
            ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._log is None:
            return
        await self.flush()
        await self.checkpoint()
        await asyncio.to_thread(self._close_stores)

    def _close_stores(self) -> None:
        for store in (self._log, self._analytics, self._state):
            if store is not None:
                store.close()
        self._log = self._analytics = self._state = None

    async def _every(self, seconds: float, fn: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await fn()
            except Exception:  # a failing flush must not stop ingest; the log has it all
                log.exception("%s: background %s failed", self.workspace, fn.__name__)

    def _recover(self, now: int) -> None:
        assert self._state is not None and self._log is not None and self._analytics is not None
        started = time.perf_counter()
        ckpt_seq, bodies = self._state.load()
        self.engine.load(_person_decoder.decode(b) for b in bodies)
        self.engine.dirty.clear()
        self.engine.dirty_state.clear()
        self.applied_seq = self._last_checkpoint_seq = ckpt_seq
        analytics_seq = self._analytics.applied_seq()
        batch = AnalyticsBatch(seq=analytics_seq)
        if analytics_seq < ckpt_seq:
            # Analytics missed merges the checkpoint already holds: restate every alias.
            batch.merges = list(self.engine.aliases.items())
        seq = min(analytics_seq, ckpt_seq)
        replayed = 0
        while records := self._log.read(seq, 2000):
            for rec in records:
                seq = rec.seq
                if rec.kind == "forget":
                    ids = _forget_decoder.decode(rec.body)["person_ids"]
                    if rec.seq > ckpt_seq:
                        for pid in ids:
                            self.engine.forget(pid)
                    if rec.seq > analytics_seq:
                        batch.forget.extend(ids)
                    continue
                events = _events_decoder.decode(rec.body)
                if rec.seq > ckpt_seq:
                    applied = self.engine.apply(events)
                    replayed += len(events)
                    if rec.seq > analytics_seq:
                        self._rows_for(rec.seq, events, applied, batch.events)
                        batch.merges.extend(applied.merged)
                elif rec.seq > analytics_seq:
                    pids = [self.engine.resolve(ev) for ev in events]
                    kept = [(ev, pid) for ev, pid in zip(events, pids, strict=True) if pid is not None]
                    self._rows_for(rec.seq, [e for e, _ in kept], Applied([p for _, p in kept]), batch.events)
                    self.engine.dirty.update(p for _, p in kept)
                if len(batch.events) >= 200_000:
                    batch.seq = seq
                    self._add_people(batch)
                    self._analytics.write(batch)
                    batch = AnalyticsBatch(seq=seq)
        self.applied_seq = max(self.applied_seq, seq)
        batch.seq = max(batch.seq, seq)
        self._add_people(batch)
        self._analytics.write(batch)
        since = now - self.config.dedupe_days * DAY_MS
        for received_at, ids in self._log.recent_ids(since):
            self.deduper.add(_ids_decoder.decode(ids), received_at)
        self.stats["replayed"] = replayed
        log.info(
            "%s: recovered %d persons, replayed %d events in %.2fs",
            self.workspace,
            len(self.engine.persons),
            replayed,
            time.perf_counter() - started,
        )

    # -- the hot path ------------------------------------------------------------------

    def submit(self, events: list[Event], received_at: int) -> asyncio.Future[Accepted]:
        """Queue events for the log; the future resolves once they are durable and applied."""
        loop = self._loop
        assert loop is not None, "pipeline is not open"
        fut: asyncio.Future[Accepted] = loop.create_future()
        deduper = self.deduper
        fresh: list[Event] = []
        batch_ids: set[str] = set()
        for ev in events:
            mid = ev.message_id
            if mid in batch_ids or deduper.seen(mid):
                continue
            batch_ids.add(mid)
            fresh.append(ev)
        duplicates = len(events) - len(fresh)
        if not fresh:
            fut.set_result(Accepted(0, duplicates, self.applied_seq))
            return fut
        ids = [ev.message_id for ev in fresh]
        deduper.add(ids, received_at)  # now, so a concurrent retry is caught before commit

        def done(result: LogRecord | BaseException) -> None:
            loop.call_soon_threadsafe(self._committed, result, fresh, ids, duplicates, fut)

        self.log.append("events", received_at, _events_encoder.encode(fresh), _events_encoder.encode(ids), done)
        return fut

    def _committed(
        self,
        result: LogRecord | BaseException,
        events: list[Event],
        ids: list[str],
        duplicates: int,
        fut: asyncio.Future[Accepted],
    ) -> None:
        if isinstance(result, BaseException):
            self.deduper.discard(ids)
            log.error("%s: log append failed: %r", self.workspace, result)
            if not fut.done():
                fut.set_exception(Unavailable("the event log could not store the events; retry"))
            return
        try:
            applied = self.engine.apply(events)
            self._rows_for(result.seq, events, applied, self._pending_rows)
            self._pending_merges.extend(applied.merged)
        except Exception:  # the events are durable; a restart replays them
            log.exception("%s: engine failed on log record %d", self.workspace, result.seq)
        self.applied_seq = result.seq
        self.stats["accepted"] += len(events)
        self.stats["duplicates"] += duplicates
        if not fut.done():
            fut.set_result(Accepted(len(events), duplicates, result.seq))

    @staticmethod
    def _rows_for(seq: int, events: list[Event], applied: Applied, rows: list[tuple[Any, ...]]) -> None:
        append = rows.append
        for ev, pid in zip(events, applied.person_ids, strict=True):
            append((
                seq, ev.message_id, pid, ev.type, ev.event, ev.channel, ev.store_id,
                ev.timestamp, ev.received_at, ev.user_id, ev.anonymous_id,
                ev.properties, ev.context, ev.traits,
            ))  # fmt: skip
        for m in applied.markers:
            append((
                seq, f"{m.message_id}#{m.type}:{m.properties.get('merged_person_id') or m.properties.get('refused') or m.properties.get('person_id')}",
                m.person_id, m.type, None, "system", None, m.timestamp, m.timestamp,
                None, None, m.properties, {}, {},
            ))  # fmt: skip

    # -- analytics hand-over -------------------------------------------------------------

    def _add_people(self, batch: AnalyticsBatch) -> None:
        persons = self.engine.persons
        for pid in self.engine.dirty:
            p = persons.get(pid)
            if p is None:
                continue
            batch.people.append((
                pid, p.identifiers, p.traits, p.first_seen, p.last_seen,
                p.channels, p.stores, p.event_count, list(p.merged_ids),
            ))  # fmt: skip
        self.engine.dirty.clear()

    async def flush(self) -> None:
        """Hand everything applied so far to analytics and wait until it is written."""
        async with self._flush_lock:
            if not (self._pending_rows or self.engine.dirty or self._pending_merges or self._pending_forget):
                return
            batch = AnalyticsBatch(
                seq=self.applied_seq,
                events=self._pending_rows,
                merges=self._pending_merges,
                forget=self._pending_forget,
            )
            self._pending_rows, self._pending_merges, self._pending_forget = [], [], []
            self._add_people(batch)
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()

            def done(exc: BaseException | None) -> None:
                loop.call_soon_threadsafe(
                    lambda: fut.done() or (fut.set_exception(exc) if exc else fut.set_result(None))
                )

            self.analytics.submit(batch, done)
            await fut

    async def checkpoint(self) -> None:
        """Write persons changed since the last checkpoint, with the seq they cover."""
        async with self._checkpoint_lock:
            engine = self.engine
            if not engine.dirty_state and not engine.removed and self.applied_seq == self._last_checkpoint_seq:
                return
            seq = self.applied_seq
            enc = _events_encoder.encode
            persons = engine.persons
            blobs = [(pid, enc(persons[pid])) for pid in engine.dirty_state if pid in persons]
            removed = list(engine.removed)
            engine.dirty_state.clear()
            engine.removed.clear()
            assert self._state is not None
            await asyncio.to_thread(self._state.save, seq, blobs, removed)
            self._last_checkpoint_seq = seq

    # -- reads -------------------------------------------------------------------------

    def person(self, person_id: str) -> Person:
        p = self.engine.get(person_id)
        if p is None:
            raise NotFound.for_field("person_id", f"no person {person_id!r} in this workspace")
        return p

    async def timeline(
        self,
        person: Person,
        *,
        limit: int = 100,
        cursor: tuple[int, str] | None = None,
        events: Iterable[str] = (),
        channels: Iterable[str] = (),
        types: Iterable[str] = (),
    ) -> tuple[list[dict[str, Any]], tuple[int, str] | None]:
        await self.flush()
        where = ["list_contains(?, person_id)"]
        params: list[Any] = [person.all_ids()]
        for column, values in (("event", events), ("channel", channels), ("type", types)):
            values = list(values)
            if values:
                where.append(f"list_contains(?, {column})")
                params.append(values)
        if cursor is not None:
            where.append("(epoch_ms(timestamp) < ? OR (epoch_ms(timestamp) = ? AND message_id < ?))")
            params += [cursor[0], cursor[0], cursor[1]]
        sql = (
            "SELECT message_id, type, event, channel, store_id, epoch_ms(timestamp) AS timestamp,"
            " epoch_ms(received_at) AS received_at, person_id, user_id, anonymous_id,"
            " properties, context, traits FROM events WHERE "
            + " AND ".join(where)
            + " ORDER BY timestamp DESC, message_id DESC LIMIT ?"
        )
        params.append(limit + 1)
        rows = await asyncio.to_thread(self.analytics.query_dicts, sql, params)
        more = len(rows) > limit
        rows = rows[:limit]
        for r in rows:
            for k in ("properties", "context", "traits"):
                r[k] = msgspec.json.decode(r[k]) if r[k] else {}
        nxt = (rows[-1]["timestamp"], rows[-1]["message_id"]) if more and rows else None
        return rows, nxt

    # -- right to be forgotten ---------------------------------------------------------

    async def forget(self, person_id: str) -> dict[str, Any]:
        """Delete a person and every event of theirs from the log, state and analytics."""
        person = self.person(person_id)
        await self.flush()
        ids = person.all_ids()
        rows = await asyncio.to_thread(
            self.analytics.query,
            "SELECT seq, message_id FROM events WHERE list_contains(?, person_id)",
            [ids],
        )
        # The forget record goes into the log first: a replay after a crash at any point
        # below deletes the person again.
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[LogRecord] = loop.create_future()

        def done(result: LogRecord | BaseException) -> None:
            def resolve() -> None:
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

            loop.call_soon_threadsafe(resolve)

        body = _events_encoder.encode({"person_ids": ids})
        self.log.append("forget", int(time.time() * 1000), body, b"", done)
        rec = await fut
        forgotten = self.engine.forget(person.person_id)
        identifiers = forgotten.identifiers if forgotten else []
        self.applied_seq = max(self.applied_seq, rec.seq)
        self._pending_forget.extend(ids)
        await self.flush()
        by_seq: dict[int, set[str]] = {}
        for seq, mid in rows:
            by_seq.setdefault(seq, set()).add(mid)
        rewritten = await asyncio.to_thread(self._rewrite_log, by_seq)
        await self.checkpoint()
        return {
            "person_id": person.person_id,
            "person_ids": ids,
            "identifiers": len(identifiers),
            "events": sum(1 for _, mid in rows if "#" not in mid),
            "timeline_entries": len(rows),
            "log_records_rewritten": rewritten,
        }

    def _rewrite_log(self, by_seq: dict[int, set[str]]) -> int:
        count = 0
        for rec in self.log.read_seqs(sorted(by_seq)):
            if rec.kind != "events":
                continue
            drop = by_seq[rec.seq]
            events = _events_decoder.decode(rec.body)
            kept = [ev for ev in events if ev.message_id not in drop]
            if len(kept) != len(events):
                self.log.rewrite(
                    rec.seq,
                    _events_encoder.encode(kept),
                    _events_encoder.encode([ev.message_id for ev in kept]),
                )
                count += 1
        return count


def new_id_factory() -> Callable[[], str]:
    """messageIds for events that came without one: unique without a uuid4 per event."""
    prefix = "tsg-" + os.urandom(6).hex() + "-"
    counter = iter(range(1, 1 << 62))
    return lambda: prefix + str(next(counter))
