"""One workspace's ingest pipeline: de-duplicate, apply, log, and let analytics tail it.

    API ──events──▶ dedupe ──▶ engine.apply ──▶ log (group commit, fsync) ──▶ answer 200
                                 (in memory)        │
                                                    ├──▶ analytics thread tails the log into DuckDB
                                                    └──▶ checkpoints of changed persons (every 30 s)

The engine applies each request on the event loop, in the order the log will hold it,
and the log record carries the persons the engine gave its events; the request is
answered once the record is durable. So an acknowledged event is durable *and* on its
person, and the analytics store can catch up from the log alone, however far behind.
If a commit ever fails, in-memory state may hold events the log does not: the pipeline
refuses further events and the platform reopens it from the checkpoint and the log.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from . import backfill as backfill_jobs
from .core import kinds, userdata
from .core.computed import RETAIL
from .core.config import WorkspaceConfig
from .core.effects import timeline_entry
from .core.engine import Applied, Engine, EventFailed
from .core.errors import Conflict, FieldError, InvalidInput, NotFound, Unavailable
from .core.events import Event
from .core.live import Backfill, DayCache
from .core.people import Person
from .core.plan import Change, plan
from .core.ports import AnalyticsBatch, Backends, Datahub, Deduper, EventLog, LogRecord, Quarantine, Reject
from .core.repair import TailRecord, repair, suspects_of
from .core.store import KeyMap, Persons
from .history import Reconstructions

__all__ = ["DEFAULT_PERSON_CACHE", "STATE_VERSION", "Accepted", "WorkspacePipeline", "new_id_factory", "now_ms"]

#: the shape of checkpointed person state; another value rebuilds it from the log
STATE_VERSION = 4
#: persons a workspace keeps in memory by default (~30 KB each with the retail traits and
#: 100 segments: ~3 GB); the rest are read from the state store on their next event
DEFAULT_PERSON_CACHE = 100_000

log = logging.getLogger("tsunagu.pipeline")

#: the persons whose timeline holds an identity conflict naming one of the ids (first
#: parameter) or unique identifier values (second): those whose records a forget changes
CONFLICT_HOLDERS = (
    "SELECT DISTINCT person_id FROM events WHERE type = 'identity_conflict' AND ("
    " list_contains(?::VARCHAR[], json_extract_string(properties, '$.person_id'))"
    " OR list_has_any(?::VARCHAR[], CAST(json_extract(properties, '$.values') AS VARCHAR[])))"
)

_encoder = msgspec.msgpack.Encoder()
_encoder_json = msgspec.json.Encoder().encode
_events_decoder = msgspec.msgpack.Decoder(list[Event])
_person_decoder = msgspec.msgpack.Decoder(Person)
_forget_decoder = msgspec.msgpack.Decoder(dict[str, list[str]])
# (person id per event, [(person id, type, timestamp, message id, properties), ...])
_people_decoder = msgspec.msgpack.Decoder(tuple[list[str], list[tuple[str, str, int, str, dict[str, Any]]]])


@dataclass(slots=True)
class Accepted:
    accepted: int
    duplicates: int
    seq: int
    #: (index in the submitted events, reason): events the engine could not apply
    refused: list[tuple[int, str]] = field(default_factory=list)


def _extend(total: Applied, part: Applied) -> None:
    total.person_ids += part.person_ids
    total.effects += part.effects
    total.merged += part.merged


def _tail_record(kind: str, body: bytes, people: bytes) -> TailRecord:
    if kind == "events":
        return TailRecord("events", _events_decoder.decode(body), _people_decoder.decode(people)[0])
    return TailRecord(kind, body=msgspec.msgpack.decode(body))


def event_json(ev: Event) -> bytes:
    """An event as JSON, its properties and context as objects (for admins to read)."""
    d = msgspec.structs.asdict(ev)
    for k in ("properties", "context"):
        raw = d[k]
        try:
            d[k] = msgspec.json.decode(raw) if raw else {}
        except msgspec.DecodeError:
            d[k] = raw.decode("utf-8", "replace")
    return _encoder_json(d)


def _people_blob(applied: Applied) -> bytes:
    markers = [timeline_entry(e) for e in applied.timeline()]
    return _encoder.encode((applied.person_ids, markers))


def read_record(rec: LogRecord, batch: AnalyticsBatch) -> None:
    """Turn one log record into analytics rows (runs on the analytics thread)."""
    if rec.kind == "forget":
        body = _forget_decoder.decode(rec.body)
        batch.forget.extend(body["person_ids"])
        batch.forget_values.extend(body.get("values", ()))
        return
    # Events are msgpack arrays (Event is array_like): decoded untyped and transposed in C.
    # Other records (definitions, back-fill chunks, timer ticks) carry only markers.
    rows = msgspec.msgpack.decode(rec.body) if rec.kind == "events" else ()
    if not rec.people:
        return
    pids, markers = _people_decoder.decode(rec.people)
    c = batch.events
    if rows:
        (mids, types, names, uids, aids, tss, rats, channels, stores, props, traits, ctxs, *_) = zip(*rows, strict=True)
        c["seq"] += [rec.seq] * len(rows)
        c["message_id"] += mids
        c["person_id"] += pids
        c["type"] += types
        c["event"] += names
        c["channel"] += channels
        c["store_id"] += stores
        c["timestamp"] += tss
        c["received_at"] += rats
        c["user_id"] += uids
        c["anonymous_id"] += aids
        c["properties"] += props
        c["context"] += ctxs
        c["traits"] += traits
    for pid, typ, ts, mid, m in markers:
        other = m.get("merged_person_id") or m.get("refused") or m.get("person_id") or m.get("segment")
        for name, value in (
            ("seq", rec.seq), ("message_id", f"{mid}#{typ}:{other}"), ("person_id", pid), ("type", typ),
            ("event", None), ("channel", "system"), ("store_id", None), ("timestamp", ts), ("received_at", ts),
            ("user_id", None), ("anonymous_id", None), ("properties", _encoder_json(m)), ("context", b"{}"),
            ("traits", {}),
        ):  # fmt: skip
            c[name].append(value)
        if typ == "merge":
            batch.merges.append((m["merged_person_id"], pid))


class WorkspacePipeline:
    """Owns one workspace's log, engine, analytics store and checkpoints."""

    def __init__(
        self,
        workspace: str,
        directory: Path,
        config: WorkspaceConfig,
        backends: Backends,
        *,
        flush_interval: float = 0.1,
        checkpoint_interval: float = 30.0,
        tick_interval: float = 60.0,
        clock: Callable[[], int] | None = None,
        person_cache: int = DEFAULT_PERSON_CACHE,
    ) -> None:
        self.workspace = workspace
        self.directory = directory
        self.config = config
        self.flush_interval = flush_interval
        self.checkpoint_interval = checkpoint_interval
        self.engine = Engine(config, namespace=workspace)
        #: persons kept in memory; the others wait in the state store (0: all in memory)
        self.person_cache = person_cache
        #: what opens this workspace's stores (picked by app.py: the runtime names no adapter)
        self.backends = backends
        self.deduper: Deduper = backends.deduper(directory, config.dedupe_window_ms)
        self.applied_seq = 0  # the last log seq the engine applied (maybe not yet durable)
        self.committed_seq = 0  # the last log seq known durable
        self.failed = False
        self._log: EventLog | None = None
        self._state: Any = None  # StateStore + PersonStore
        self._quarantine: Quarantine | None = None
        self.closing = False  # close() began: no new work
        self._analytics: Any = None  # AnalyticsStore (with SQL readers)
        self._datahub: Datahub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._commit_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._inflight: dict[int, tuple[str, bytes, bytes]] = {}  # appended, not yet durable
        self._completions: collections.deque[
            tuple[LogRecord | BaseException, int, int, int, asyncio.Future[Any], list[tuple[int, str]] | None]
        ] = collections.deque()
        self._drain_scheduled = False
        self._checkpoint_lock = asyncio.Lock()
        self._relief: asyncio.Task[None] | None = None  # a checkpoint started to relieve memory
        #: member index changes handed to a checkpoint that is not committed yet
        self._members_saving: tuple[dict[str, list[str] | None], set[str]] = ({}, set())
        self._definitions_lock = asyncio.Lock()
        self._last_checkpoint_seq = 0
        self.stats = {"accepted": 0, "duplicates": 0, "replayed": 0}
        self.tick_interval = tick_interval
        self.clock = clock or now_ms  # what the timer and back-fill take as now (ms)
        self.backfill_chunk = 20_000  # persons per back-fill record
        self._backfill_task: asyncio.Task[None] | None = None
        self._backfill_totals: dict[str, int] = {}
        self._backfill_done: dict[str, int] = {}
        self._backfill_lock = asyncio.Lock()
        self.histories = Reconstructions(self)  # segment history before each definition
        self.history_interval = 30.0  # seconds between looks for history that arrived late

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def log(self) -> EventLog:
        if self._log is None:
            raise Unavailable("the workspace is reopening; retry shortly")
        return self._log

    @property
    def analytics(self) -> Any:
        if self._analytics is None:
            raise Unavailable("the workspace is reopening; retry shortly")
        return self._analytics

    @property
    def datahub(self) -> Datahub:
        """The workspace's Datahub tables (beside the analytics store's)."""
        if self._datahub is None or self._analytics is None:
            raise Unavailable("the workspace is reopening; retry shortly")
        return self._datahub

    async def open(self, now: int, *, background: bool = True) -> None:
        """Open the stores and recover: load the checkpoint, replay the log tail.

        A replayed tail is checkpointed at once, so the next failure finds a short tail
        (a repair of persons after a failed event replays it).
        """
        self._loop = asyncio.get_running_loop()
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            stores = await asyncio.to_thread(self.backends.open, self.directory, self.deduper)
            self._log, self._state = stores.log, stores.state
            self._analytics, self._quarantine = stores.analytics, stores.quarantine
            self._datahub = stores.datahub
            self._datahub.timezone = self.config.timezone
            await asyncio.to_thread(self._recover, now)
        except BaseException:
            await asyncio.to_thread(self._close_stores)
            raise
        self._analytics.start(self._log.tail, read_record, self.flush_interval, self._analytics_reject)
        for kind, name, reason in self.engine.live.skipped:
            ref = self.new_ref()
            log.error("%s: stored %s %r no longer parses and is skipped (ref %s): %s",
                      self.workspace, kind, name, ref, reason)  # fmt: skip
            self.quarantine.add("definition", ref, reason=f"{kind} {name}: {reason}", at=now)
        self.engine.live.skipped.clear()
        if self.stats["replayed"]:
            await self.checkpoint()
        if self.applied_seq == 0 and self.config.retail_traits:
            for d in RETAIL:  # a new workspace starts with a retailer's computed traits
                await self.define("computed_trait", d["name"], {k: v for k, v in d.items() if k != "name"}, now)
        if background:
            self._tasks = [
                asyncio.create_task(self._every(self.checkpoint_interval, self.checkpoint), name="checkpoint"),
                asyncio.create_task(self._every(self.tick_interval, self._tick_now), name="tick"),
                asyncio.create_task(self._every(self.history_interval, self._check_histories), name="history"),
            ]
            self._start_backfills()
            self.histories.check()

    async def close(self) -> None:
        """Stop taking work, let what is in flight finish, and close every store.

        Requests already waiting for the log get their answer (the log writer commits
        what it was given before it stops); new ones get 503 until the workspace is open
        again. Every store is closed even if another fails to.
        """
        self.closing = True
        if self._backfill_task is not None:
            self._tasks.append(self._backfill_task)
            self._backfill_task = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.histories.close()
        if self._log is None:
            return
        if not self.failed:
            try:
                await self.flush()
                await self.checkpoint()
            except Exception:  # the log holds everything: the next open replays it
                log.exception("%s: the last flush or checkpoint failed while closing", self.workspace)
        await asyncio.to_thread(self._close_stores)
        await asyncio.sleep(0)  # let the log's last completions reach their requests

    def _close_stores(self) -> None:
        # analytics first: its thread tails the log until it stops
        for store in (self._analytics, self._log, self._state, self._quarantine, self.deduper):
            if store is not None:
                try:
                    store.close()
                except Exception:
                    log.exception("%s: closing %s failed", self.workspace, type(store).__name__)
        self._log = self._analytics = self._state = self._quarantine = None

    def _analytics_reject(self, reject: Reject) -> None:
        """A row the analytics store refused (on its thread): into the quarantine."""
        ref = self.new_ref()
        log.error(
            "%s: analytics could not write the %s row of message %s (ref %s): %s; it is in the quarantine",
            self.workspace, reject.table, reject.message_id, ref, reject.reason,
        )  # fmt: skip
        if self._quarantine is not None:
            self._quarantine.add(
                "analytics", ref, reason=f"{reject.table}: {reject.reason}", at=self.clock(), seq=reject.seq,
                message_id=reject.message_id, person_id=reject.person_id, body=reject.body,
            )  # fmt: skip

    @staticmethod
    def new_ref() -> str:
        """A short reference that ties a client's answer, the log line and the quarantine."""
        return "q-" + os.urandom(5).hex()

    @property
    def quarantine(self) -> Quarantine:
        if self._quarantine is None:
            raise Unavailable("the workspace is reopening; retry shortly")
        return self._quarantine

    async def _check_histories(self) -> None:
        self.histories.check()

    async def _every(self, seconds: float, fn: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await fn()
            except Exception:  # a failing checkpoint must not stop ingest; the log has it all
                log.exception("%s: background %s failed", self.workspace, fn.__name__)

    def _recover(self, now: int) -> None:
        assert self._state is not None and self._log is not None and self._analytics is not None
        started = time.perf_counter()
        ckpt_seq, _ = self._state.load()
        meta = self._state.load_meta()
        if ckpt_seq and meta.get("version") != STATE_VERSION:
            # person state of an older shape: rebuild it from the log (the source of truth)
            log.info("%s: checkpoint format changed; rebuilding person state from the log", self.workspace)
            self._state.clear()
            ckpt_seq, meta = 0, {}
        # Persons stay in the store until they are needed: only the log tail is replayed.
        self.engine.attach(self._state, self.person_cache)
        if meta.get("live"):
            # the timers stay in the store's index (tick reads the due ones), not in memory
            self.engine.live.load_state(meta["live"], self.engine.persons, now, timers=())
        self.engine.dirty.clear()
        self.engine.removed.clear()
        self._last_checkpoint_seq = seq = ckpt_seq
        analytics_seq = self._analytics.applied_seq()
        replayed = 0
        # Persons the analytics store has not seen since its seq get handed over again.
        for rec in self._log.read_range(min(analytics_seq, ckpt_seq), ckpt_seq):
            if rec.kind == "events":
                pids, _ = _people_decoder.decode(rec.people)
                self.engine.dirty.update(p for pid in pids if (p := self.engine.canonical(pid)))
        while records := self._log.read(seq, 2000):
            for rec in records:
                seq = rec.seq
                if rec.kind == "events":
                    events = _events_decoder.decode(rec.body)
                    self.engine.apply(events)
                    replayed += len(events)
                else:
                    body = msgspec.msgpack.decode(rec.body)
                    try:
                        self._apply_control(rec.kind, rec.seq, body)
                    except InvalidInput as exc:  # a definition the rules of today refuse
                        if rec.kind != "define":
                            raise
                        self.engine.live.skipped.append((body["kind"], body["name"], exc.message))
        self.applied_seq = self.committed_seq = seq
        self.deduper.open(now)  # its index is in the log: only the tail since its checkpoint is read
        self.stats["replayed"] = replayed
        log.info(
            "%s: recovered %d persons, replayed %d events in %.2fs",
            self.workspace,
            len(self.engine.persons),
            replayed,
            time.perf_counter() - started,
        )

    def _apply_control(self, kind: str, seq: int, body: Any) -> Applied | None:
        """Apply a control record to the engine (live, or replaying the log)."""
        engine = self.engine
        if kind == "forget":
            holders = body.get("holders")  # absent in records written before it was kept
            for pid in body["person_ids"]:
                engine.forget(pid, holders)
            return None
        if kind == "define":
            return engine.define(body["kind"], body["name"], body["body"], seq, body["now"])
        if kind == "undefine":
            return engine.undefine(body["kind"], body["name"], body["now"])
        if kind == "backfill":
            rows = [tuple(r) for r in body["rows"]]
            return engine.apply_backfill(body["id"], rows, body["cursor"], body["done"], body["now"])
        if kind == "tick":
            return engine.tick(body["now"])
        raise ValueError(f"unknown log record kind {kind!r}")

    async def _control(self, kind: str, body: dict[str, Any], received_at: int) -> Applied:
        """Apply a control record now and make it durable, like a request's events."""
        loop = self._loop
        assert loop is not None, "pipeline is not open"
        if self.failed or self.closing:
            raise Unavailable("the workspace is recovering from a storage error; retry shortly")
        encoded = _encoder.encode(body)
        seq = self.applied_seq + 1
        try:
            applied = self._apply_control(kind, seq, body)
        except InvalidInput:
            raise
        except Exception:
            log.exception("%s: engine failed on a %s record; the workspace will be reopened", self.workspace, kind)
            self.failed = True
            raise Unavailable("the workspace hit an internal error and is recovering; retry shortly") from None
        assert applied is not None
        self.applied_seq = seq
        fut: asyncio.Future[Any] = loop.create_future()

        def done(result: LogRecord | BaseException) -> None:
            self._completed(result, seq, 0, 0, fut)

        self._append(seq, kind, received_at, encoded, b"", _people_blob(applied), done)
        await fut
        return applied

    # -- definitions ---------------------------------------------------------------------

    def definitions(self) -> list[dict[str, Any]]:
        """Every definition with its state: ready, or building (back-fill progress)."""
        sizes = self.segment_sizes()
        return [self._definition_item(kind, name, sizes) for kind, name in sorted(self.engine.live.definitions)]

    def definition(self, kind: str, name: str) -> dict[str, Any]:
        if (kind, name) not in self.engine.live.definitions:
            label = kinds.KINDS[kind].label if kind in kinds.KINDS else kind
            raise NotFound.for_field("name", f"no {label} {name!r} in this workspace")
        sizes = {name: self.segment_size(name)} if kind == "segment" else {}
        return self._definition_item(kind, name, sizes)

    def _definition_item(self, kind: str, name: str, sizes: dict[str, int]) -> dict[str, Any]:
        item = self.engine.live.definitions[(kind, name)].to_dict()
        item["status"] = "ready"
        pending = self.engine.live.pending_for(kind, name)
        if pending:
            item["status"] = "building"
            item["backfill"] = [self.backfill_progress(b) for b in pending]
        if kind == "segment":
            item["members"] = sizes.get(name, 0)
        return item

    def backfill_progress(self, b: Backfill) -> dict[str, Any]:
        total = self._backfill_totals.get(b.id)
        done = self._backfill_done.get(b.id, 0)
        return {"id": b.id, "persons_done": done, "persons_total": total, "rows": b.rows}

    def segment_members(self, name: str, after: str = "", limit: int = 1000) -> list[str]:
        """Up to `limit` member ids of a segment after `after`, in id order, without a pass
        over every person: the store's member index as of its last checkpoint, with the
        persons whose memberships changed since read from memory."""
        engine = self.engine
        store = self._state
        changed = engine.live.members_changed
        if store is None or changed is None or not hasattr(store, "members"):  # no index: every person
            ids = sorted(pid for pid, p in engine.persons.items() if name in p.segments and pid > after)
            return ids[:limit]
        saving, saving_dropped = self._members_saving
        overlay = changed | saving.keys()
        out: list[str] = []
        if name not in engine.live.segments_dropped and name not in saving_dropped:
            stored = store.members(name, after, limit + len(overlay))
            out = [pid for pid in stored if pid not in overlay]
        for pid in overlay:
            if pid > after and (p := engine.persons.get(pid)) is not None and name in p.segments:
                out.append(pid)
        out.sort()
        return out[:limit]

    def segment_size(self, name: str) -> int:
        return self.engine.live.sizes.get(name, 0)

    def segment_sizes(self) -> dict[str, int]:
        """Members of every segment (kept as memberships change, not counted)."""
        return {name: n for name, n in self.engine.live.sizes.items() if n}

    def current_definitions(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(kind, name) -> body of every definition the workspace holds."""
        return {key: d.body for key, d in self.engine.live.definitions.items()}

    async def apply(
        self, items: list[Any], now: int, *, prune: bool = False, dry_run: bool = False
    ) -> list[Change]:  # fmt: skip
        """Validate definitions, all of them or none (`core.plan`: the one validation), then
        apply the changes in order; with `prune`, delete the ones the list does not name.
        Writes to a workspace's definitions take turns: a plan holds until it is applied."""
        async with self._definitions_lock:
            changes = plan(self.current_definitions(), items, prune=prune)
            if not dry_run:
                for c in changes:
                    if c.action in ("create", "update"):
                        assert c.after is not None
                        await self._define(c.kind, c.name, c.after, now)
                    elif c.action == "delete":
                        await self._undefine(c.kind, c.name, now)
        return changes

    async def define(self, kind: str, name: str, body: dict[str, Any], now: int) -> dict[str, Any]:
        """Create or change one definition (idempotent: the same body changes nothing);
        refused with paths relative to `body` (`rule.all[0].op`)."""
        try:
            changes = await self.apply([{"kind": kind, "name": name, **body}], now)
        except InvalidInput as exc:
            errors = [FieldError(e.field.removeprefix("definitions[0]").lstrip(".") or "body", e.reason)
                      for e in exc.errors]  # fmt: skip
            raise InvalidInput.for_fields(errors) from None
        return self.definition(kind, name) | {"changed": changes[0].action != "unchanged"}

    async def _define(self, kind: str, name: str, body: dict[str, Any], now: int) -> None:
        before = dict(self.engine.live.backfills)
        await self._control("define", {"kind": kind, "name": name, "body": body, "now": now}, now)
        await self._drop_abandoned_backfills(before)
        self._start_backfills()
        self.histories.check()  # the history before today of the segments it changes, in the background

    async def undefine(self, kind: str, name: str, now: int) -> None:
        """Delete a definition: NotFound if there is none, Conflict while another reads it."""
        async with self._definitions_lock:
            if (kind, name) not in self.engine.live.definitions:
                label = kinds.KINDS[kind].label if kind in kinds.KINDS else kind
                raise NotFound.for_field("name", f"no {label} {name!r} in this workspace")
            try:  # another definition reads it: nothing wrong with the request, with the workspace
                self.engine.live.undefine_check(kind, name)
            except InvalidInput as exc:
                raise Conflict(exc.message, exc.errors) from None
            await self._undefine(kind, name, now)

    async def _undefine(self, kind: str, name: str, now: int) -> None:
        before = dict(self.engine.live.backfills)
        await self._control("undefine", {"kind": kind, "name": name, "now": now}, now)
        await self._drop_abandoned_backfills(before)
        self.histories.check()  # drops a removed segment's history; a changed trait's readers rebuild

    async def _drop_abandoned_backfills(self, before: dict[str, Backfill]) -> None:
        """A back-fill a change replaced or dropped leaves no grouped rows behind."""
        now = self.engine.live.backfills
        async with self._backfill_lock:  # not while a page reads them
            for bf_id, bf in before.items():
                if now.get(bf_id) is not bf:
                    await asyncio.to_thread(backfill_jobs.finish, self.analytics, bf)
                    self._backfill_totals.pop(bf_id, None)
                    self._backfill_done.pop(bf_id, None)

    # -- back-fill ---------------------------------------------------------------------

    def _start_backfills(self) -> None:
        idle = self._backfill_task is None or self._backfill_task.done()
        if idle and self.engine.live.backfills and self._loop is not None:
            self._backfill_task = self._loop.create_task(self._run_backfills(), name="backfill")

    async def _run_backfills(self) -> None:
        """Count the history of new counters and computed traits, page by page, into the log."""
        while self.engine.live.backfills and not self.failed and self._log is not None:
            try:
                await self.backfill_step()
            except Exception:
                if self._log is None:  # closed (or crashed) under it: the log resumes it on reopen
                    return
                log.exception("%s: back-fill step failed; retrying in 5 s", self.workspace)
                await asyncio.sleep(5)

    async def backfill_step(self) -> bool:
        """Back-fill one page of persons; False when nothing is left to do."""
        async with self._backfill_lock:  # one page at a time, whoever asks
            return await self._backfill_step()

    async def _backfill_step(self) -> bool:
        live = self.engine.live
        if not live.backfills:
            return False
        bf = next(iter(live.backfills.values()))
        await self.flush()
        if not await asyncio.to_thread(self.analytics.wait_for, bf.upto_seq - 1):
            return True  # analytics is behind: try again
        cursor_before = bf.cursor
        if bf.id not in self._backfill_totals:
            self._backfill_totals[bf.id] = await asyncio.to_thread(
                backfill_jobs.person_count, self.analytics, bf, self.config.timezone
            )
        rows, cursor, done = await asyncio.to_thread(
            backfill_jobs.chunk, self.analytics, bf, self.config.timezone, self.backfill_chunk
        )
        if live.backfills.get(bf.id) is not bf or bf.cursor != cursor_before:  # changed meanwhile
            return True
        self._backfill_done[bf.id] = self._backfill_done.get(bf.id, 0) + len({r[0] for r in rows})
        now = self.clock()
        await self._control("backfill", {"id": bf.id, "rows": rows, "cursor": cursor, "done": done, "now": now}, now)
        if done:
            await asyncio.to_thread(backfill_jobs.finish, self.analytics, bf)
            self._backfill_totals.pop(bf.id, None)
            self._backfill_done.pop(bf.id, None)
        return bool(live.backfills)

    async def wait_for_backfills(self, timeout: float = 120.0) -> None:
        self._start_backfills()
        if self._backfill_task is not None:
            await asyncio.wait_for(asyncio.shield(self._backfill_task), timeout)

    # -- time ---------------------------------------------------------------------------

    async def tick(self, now: int) -> int:
        """Re-check the persons whose window edge passed by `now`; returns the changes."""
        if not self.engine.live.due_count(now):
            return 0
        applied = await self._control("tick", {"now": now}, now)
        return len(applied.timeline())

    async def _tick_now(self) -> None:
        await self.tick(self.clock())

    # -- the hot path ------------------------------------------------------------------

    def submit(self, events: list[Event], received_at: int) -> asyncio.Future[Accepted]:
        """Apply events and queue them for the log; the future resolves once they are durable.

        An event the engine cannot apply is refused alone (`Accepted.refused`, by its index
        in `events`): the persons it touched are rebuilt without it, it goes to the
        quarantine for admins to see, and the rest of the request goes on.
        """
        loop = self._loop
        assert loop is not None, "pipeline is not open"
        if self.failed or self.closing or self._log is None:
            raise Unavailable("the workspace is recovering from a storage error; retry shortly")
        fut: asyncio.Future[Accepted] = loop.create_future()
        deduper = self.deduper
        deduper.advance(received_at)
        fresh: list[Event] = []
        positions: list[int] = []  # where each fresh event is in `events`
        batch_ids: set[str] = set()
        for i, ev in enumerate(events):
            mid = ev.message_id
            if mid in batch_ids or deduper.seen(mid):
                continue
            batch_ids.add(mid)
            fresh.append(ev)
            positions.append(i)
        duplicates = len(events) - len(fresh)
        if not fresh:
            fut.set_result(Accepted(0, duplicates, self.applied_seq))
            return fut
        ids = [ev.message_id for ev in fresh]
        deduper.add(ids, received_at)  # now, so a concurrent retry is caught before commit
        applied, refused = self._apply(fresh, received_at)
        if refused:
            deduper.discard([fresh[i].message_id for i in refused])  # a fixed retry is welcome
            gone = set(refused)
            kept = [ev for i, ev in enumerate(fresh) if i not in gone]
            refusals = [(positions[i], reason) for i, reason in refused.items()]
            if not kept:
                fut.set_result(Accepted(0, duplicates, self.applied_seq, refusals))
                return fut
            fresh, ids = kept, [ev.message_id for ev in kept]
        else:
            refusals = []
        try:
            body = _encoder.encode(fresh)
        except (OverflowError, TypeError):  # the edge admits only storable values: a bug
            log.exception("%s: accepted events cannot be encoded; the workspace will be reopened", self.workspace)
            self.failed = True
            raise Unavailable("the workspace hit an internal error and is recovering; retry shortly") from None
        self.applied_seq += 1
        seq = self.applied_seq
        n = len(fresh)

        def done(result: LogRecord | BaseException) -> None:
            self._completed(result, seq, n, duplicates, fut, refusals)

        self._append(seq, "events", received_at, body, _encoder.encode(ids), _people_blob(applied), done)
        return fut

    def _apply(self, events: list[Event], now: int) -> tuple[Applied, dict[int, str]]:
        """Apply events; those the engine fails on are refused (index -> reason) and undone."""
        total = Applied()
        refused: dict[int, str] = {}
        offset = 0
        rest = events
        while rest:
            try:
                part = self.engine.apply(rest)
            except EventFailed as failure:
                part = failure.applied
                _extend(total, part)
                i = offset + failure.index
                ref = self.new_ref()
                log.error(
                    "%s: the engine could not apply event %s (ref %s); it is refused and its persons rebuilt",
                    self.workspace, failure.event.message_id, ref, exc_info=failure.error,
                )  # fmt: skip
                kept_before = [events[j] for j in range(i) if j not in refused]
                if not self._repair(failure, list(zip(kept_before, total.person_ids, strict=True)), now):
                    self.failed = True
                    raise Unavailable("the workspace hit an internal error and is recovering; retry shortly") from None
                refused[i] = f"could not be applied (a server error, logged as ref {ref}); it was not stored"
                self.quarantine.add(
                    "engine", ref, reason=repr(failure.error), message_id=failure.event.message_id,
                    person_id=failure.person_id, body=event_json(failure.event), at=now,
                )  # fmt: skip
                offset = i + 1
                rest = events[offset:]
                continue
            _extend(total, part)
            break
        self._relieve_memory()
        return total, refused

    def _relieve_memory(self) -> None:
        """Persons changed since the checkpoint cannot leave memory: when they fill the
        cache by a quarter more, checkpoint now (then the cache trims itself)."""
        cache = self.person_cache
        persons = self.engine.persons
        if (
            cache
            and isinstance(persons, Persons)
            and persons.in_memory() > cache + cache // 4
            and (self._relief is None or self._relief.done())  # one at a time (it waits for a timed one)
            and self._loop is not None
            and not self.closing
        ):
            self._relief = self._loop.create_task(self._checkpoint_quietly())

    def _memory_full(self) -> bool:
        """Persons in memory at twice the cache: answers wait for the relieving checkpoint."""
        persons = self.engine.persons
        return bool(self.person_cache) and isinstance(persons, Persons) and persons.in_memory() > 2 * self.person_cache

    async def _checkpoint_quietly(self) -> None:
        try:
            await self.checkpoint()
        except Exception:  # the log has it all; the timed checkpoint tries again
            log.exception("%s: a checkpoint to relieve memory failed", self.workspace)

    def _repair(self, failure: EventFailed, before: list[tuple[Event, str]], now: int) -> bool:
        """Rebuild the persons a failed event touched from the checkpoint and the log tail."""
        assert self._state is not None
        engine = self.engine
        try:
            suspects = suspects_of(engine, failure.event, failure.person_id)
            ckpt_seq, meta, bodies = self._state.read_persons(sorted(suspects))
            live_state = meta.get("live") if meta.get("version") == STATE_VERSION or not ckpt_seq else None
            if ckpt_seq and live_state is None:
                return False
            persons = [_person_decoder.decode(b) for b in bodies]
            ok = repair(
                engine, suspects, persons, live_state, self._tail(ckpt_seq, before), {failure.event.message_id}, now
            )
        except Exception:
            log.exception("%s: rebuilding the persons of a failed event failed", self.workspace)
            return False
        if ok:
            log.info("%s: rebuilt %d person ids after a failed event", self.workspace, len(suspects))
        return ok

    def _tail(self, after_seq: int, before: list[tuple[Event, str]]) -> Iterator[TailRecord]:
        """Every record after `after_seq`: the log's, those still on their way to it, then
        the events of the request being applied."""
        seq = after_seq
        while records := self.log.read(seq, 500):
            for rec in records:
                seq = rec.seq
                yield _tail_record(rec.kind, rec.body, rec.people)
        for s in sorted(self._inflight):
            if s > seq:
                kind, body, people = self._inflight[s]
                yield _tail_record(kind, body, people)
        if before:
            yield TailRecord("events", [ev for ev, _ in before], [pid for _, pid in before])

    def _append(
        self, seq: int, kind: str, received_at: int, body: bytes, ids: bytes, people: bytes, done: Callable[..., None]
    ) -> None:
        """Queue a record for the log, remembered until it is durable (a repair reads it)."""
        self._inflight[seq] = (kind, body, people)
        self.log.append(seq, kind, received_at, body, ids, people, done)

    def _completed(
        self,
        result: LogRecord | BaseException,
        seq: int,
        accepted: int,
        duplicates: int,
        fut: asyncio.Future[Any],
        refused: list[tuple[int, str]] | None = None,
    ) -> None:
        """Called on the log writer thread: queue the completion, wake the loop once per group.

        One wake-up (a write to the loop's self-pipe) per commit group instead of one per
        request: under load a group holds dozens of requests.
        """
        self._completions.append((result, seq, accepted, duplicates, fut, refused))
        if not self._drain_scheduled:
            self._drain_scheduled = True
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._drain_completions)

    def _drain_completions(self) -> None:
        self._drain_scheduled = False  # first: a completion queued from now on schedules again
        completions = self._completions
        while completions:
            self._committed(*completions.popleft())

    def _committed(
        self,
        result: LogRecord | BaseException,
        seq: int,
        accepted: int,
        duplicates: int,
        fut: asyncio.Future[Any],
        refused: list[tuple[int, str]] | None,
    ) -> None:
        self._inflight.pop(seq, None)
        if isinstance(result, BaseException):
            if not self.failed:
                log.error("%s: log append failed (%r); the workspace will be reopened", self.workspace, result)
            self.failed = True
            if not fut.done():
                fut.set_exception(Unavailable("the event log could not store the events; retry"))
            for _, waiter in self._commit_waiters:  # what they wait for will never commit
                if not waiter.done():
                    waiter.set_exception(Unavailable("the event log failed; the workspace is reopening"))
            self._commit_waiters = []
            return
        self.committed_seq = result.seq
        self.stats["accepted"] += accepted
        self.stats["duplicates"] += duplicates
        if not fut.done():
            answer = Accepted(accepted, duplicates, result.seq, refused or [])
            relief = self._relief
            if relief is not None and not relief.done() and self._memory_full():
                # Back-pressure: the persons changed since the checkpoint cannot leave memory
                # until it commits, and a checkpoint's thread gets little of the GIL while
                # the loop applies events; a client waits for its answer (durable already)
                # until memory is relieved, so memory stays bounded by the cache.
                relief.add_done_callback(lambda _, f=fut, a=answer: None if f.done() else f.set_result(a))
            else:
                fut.set_result(answer)
        if self._commit_waiters:
            still = []
            for seq, waiter in self._commit_waiters:
                if seq <= result.seq:
                    if not waiter.done():
                        waiter.set_result(None)
                else:
                    still.append((seq, waiter))
            self._commit_waiters = still

    async def _until_committed(self, seq: int) -> None:
        if self.committed_seq >= seq:
            return
        assert self._loop is not None
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._commit_waiters.append((seq, waiter))
        await asyncio.wait_for(waiter, 60)

    # -- analytics and checkpoints -------------------------------------------------------

    def _hand_over_people(self) -> None:
        persons = self.engine.persons
        rows = []
        for pid in self.engine.dirty:
            p = persons.get(pid)
            if p is not None:
                rows.append(
                    (pid, p.identifiers, p.traits, p.first_seen, p.last_seen, p.channels, p.stores, p.event_count,
                     list(p.merged_ids))
                )  # fmt: skip
        self.engine.dirty_state |= self.engine.dirty
        self.engine.dirty.clear()
        if rows:
            self.analytics.hand_over(rows, [])

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until analytics holds every event applied so far and every person as of now.

        Applied, not just acknowledged: a person read from the engine may already show an
        event whose commit is in flight, and its timeline must show it too. `timeout`
        bounds the wait for the analytics store (its thread returns then: no wait is left
        behind holding a worker).
        """
        self._hand_over_people()
        seq = self.applied_seq
        if self.committed_seq < seq and not self.failed:
            await self._until_committed(seq)
        if not await asyncio.to_thread(self.analytics.wait_for, seq, timeout):
            if self.closing:
                raise Unavailable("the workspace is reopening; retry shortly")
            raise Unavailable("the analytics store is behind; retry shortly")
        if self.analytics.error is not None and self.analytics.applied_seq() < seq:
            raise Unavailable(f"the analytics store could not be written: {self.analytics.error}")

    async def checkpoint(self) -> None:
        """Write persons changed since the last checkpoint, with the seq they cover."""
        async with self._checkpoint_lock:
            engine = self.engine
            if self.failed:
                return
            # Analytics takes the changed persons first, so that what stays pinned in
            # memory afterwards is exactly what changed since this checkpoint.
            self._hand_over_people()
            dirty = engine.dirty_state | engine.dirty
            if not dirty and not engine.removed and self.applied_seq == self._last_checkpoint_seq:
                return
            seq = self.applied_seq
            persons = engine.persons
            blobs = []
            for pid in dirty:
                p = persons.get(pid)
                if p is not None:
                    try:
                        blobs.append((pid, _encoder.encode(p)))
                    except (OverflowError, TypeError) as exc:  # cannot happen past the edge; never stop
                        blobs.append((pid, self._storable(p, exc)))
            removed = list(engine.removed)
            meta = _encoder.encode({"version": STATE_VERSION, "live": engine.live.to_state()})
            index, aliases = engine.index, engine.aliases
            keys = index.changes() if isinstance(index, KeyMap) else {}
            merged = aliases.changes() if isinstance(aliases, KeyMap) else {}
            timers = engine.live.timer_changes()
            members, dropped = engine.member_changes()
            self._members_saving = (members, set(dropped))
            written = [pid for pid, _ in blobs]
            cache = engine.persons if isinstance(engine.persons, Persons) else None
            if cache is not None:
                cache.saving(written)  # in memory until the store holds them
            engine.dirty_state.clear()
            engine.removed.clear()
            try:
                await self._until_committed(seq)  # never checkpoint an event the log may not hold
                assert self._state is not None
                await asyncio.to_thread(
                    self._state.save, seq, blobs, removed, meta, keys, merged, timers, members, dropped
                )
            except BaseException:
                # Not written: all of it goes with the next checkpoint (whose seq is later).
                engine.dirty_state.update(written)
                engine.removed.update(removed)
                if cache is not None:
                    cache.aborted(written)
                if isinstance(index, KeyMap):
                    index.restore(keys)
                if isinstance(aliases, KeyMap):
                    aliases.restore(merged)
                engine.live.timers_aborted(timers)
                engine.members_moved(*members)
                engine.live.segments_dropped.update(dropped)
                self._members_saving = ({}, set())
                raise
            self._members_saving = ({}, set())
            engine.live.timers_committed(timers)
            self._last_checkpoint_seq = seq
            if cache is not None:
                cache.committed(written, removed)
                if isinstance(index, KeyMap):
                    index.committed(keys)
                if isinstance(aliases, KeyMap):
                    aliases.committed(merged)
                engine.settle(trim=True)
            if self._log is not None:  # not closed meanwhile (a crash of the stores)
                await asyncio.to_thread(self.deduper.checkpoint)

    def _storable(self, person: Person, error: BaseException) -> bytes:
        """A person that msgpack refused, with its out-of-range integers made floats.

        The engine keeps sums in range (`userdata.fit_sum`) and the edge admits only
        64-bit integers, so this is a guard against a bug: the person is checkpointed
        (and kept in memory) with the adjusted values, and the quarantine says so.
        """
        fixed = _fit_ints(msgspec.to_builtins(person))
        body = _encoder.encode(fixed)
        self.engine.persons[person.person_id] = _person_decoder.decode(body)
        ref = self.new_ref()
        log.error("%s: person %s checkpointed with adjusted numbers (ref %s): %r",
                  self.workspace, person.person_id, ref, error)  # fmt: skip
        if self._quarantine is not None:
            self._quarantine.add(
                "checkpoint", ref, reason=f"integers past 64 bits stored as floats: {error}", at=self.clock(),
                person_id=person.person_id,
            )  # fmt: skip
        return body

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
        from .sql.timeline import timeline_query

        sql, params = timeline_query(
            person.all_ids(), limit=limit, cursor=cursor, events=events, channels=channels, types=types
        )
        rows = await asyncio.to_thread(self.analytics.query_dicts, sql, params)
        more = len(rows) > limit
        rows = rows[:limit]
        for r in rows:
            for k in ("properties", "context", "traits"):
                r[k] = msgspec.json.decode(r[k]) if r[k] else {}
        nxt = (rows[-1]["timestamp"], rows[-1]["message_id"]) if more and rows else None
        return rows, nxt

    async def user_data(self, person: Person) -> userdata.Folded:
        """Every user data field of a person, folded from their events in the analytics
        store (the engine keeps live only the fields definitions read)."""
        await self.flush()
        from .sql.timeline import user_data_query

        sql, params = user_data_query(person.all_ids())
        rows = await asyncio.to_thread(self.analytics.query, sql, params)
        day_of = DayCache(ZoneInfo(self.config.timezone))  # its own: the engine's is the loop's
        decode = msgspec.json.decode
        return await asyncio.to_thread(
            userdata.fold, ((t, e, ts, mid, decode(p) if p and len(p) > 2 else {}) for t, e, ts, mid, p in rows), day_of
        )

    # -- right to be forgotten ---------------------------------------------------------

    async def forget(self, person_id: str, now: int) -> dict[str, Any]:
        """Delete a person and every event of theirs from the log, state and analytics."""
        person = self.person(person_id)
        await self.flush()
        ids = person.all_ids()
        rows = await asyncio.to_thread(
            self.analytics.query, "SELECT seq, message_id FROM events WHERE list_contains(?, person_id)", [ids]
        )
        unique = self.config.unique_identifiers
        values = sorted({v for t, vs in person.identifiers.items() if t in unique for v in vs})
        # Who else keeps a conflict naming them: their timelines say (no pass over every person).
        found = await asyncio.to_thread(self.analytics.query, CONFLICT_HOLDERS, [ids, values])
        holders = sorted({pid for (pid,) in found} - set(ids))
        # The forget record goes into the log: a replay after a crash at any point below
        # deletes the person again.
        forgotten = self.engine.forget(person.person_id, holders)
        identifiers = forgotten.identifiers if forgotten else []
        self.applied_seq += 1
        seq = self.applied_seq
        assert self._loop is not None
        loop = self._loop
        fut: asyncio.Future[Any] = loop.create_future()

        def done(result: LogRecord | BaseException) -> None:
            self._completed(result, seq, 0, 0, fut)

        body = _encoder.encode({"person_ids": ids, "values": values, "holders": holders})
        self._append(seq, "forget", now, body, b"", b"", done)
        await fut
        await self.flush()
        rewritten = await asyncio.to_thread(self._rewrite_log, {s for s, _ in rows}, set(ids))
        # what was set aside about them goes too (it holds their events)
        await asyncio.to_thread(self.quarantine.forget, ids, [mid for _, mid in rows if "#" not in mid])
        await self.checkpoint()
        return {
            "person_id": person.person_id,
            "person_ids": ids,
            "identifiers": len(identifiers),
            "events": sum(1 for _, mid in rows if "#" not in mid),
            "timeline_entries": len(rows),
            "log_records_rewritten": rewritten,
        }

    def _rewrite_log(self, seqs: set[int], person_ids: set[str]) -> int:
        count = 0
        for rec in self.log.read_seqs(sorted(seqs)):
            if rec.kind != "events":
                if rec.people:
                    pids, markers = _people_decoder.decode(rec.people)
                    kept_markers = [m for m in markers if m[0] not in person_ids]
                    if len(kept_markers) != len(markers):
                        self.log.rewrite(rec.seq, rec.body, rec.ids, _encoder.encode((pids, kept_markers)))
                        count += 1
                continue
            events = _events_decoder.decode(rec.body)
            pids, markers = _people_decoder.decode(rec.people)
            keep = [i for i, pid in enumerate(pids) if pid not in person_ids]
            kept_markers = [m for m in markers if m[0] not in person_ids]
            if len(keep) == len(events) and len(kept_markers) == len(markers):
                continue
            kept = [events[i] for i in keep]
            self.log.rewrite(
                rec.seq,
                _encoder.encode(kept),
                _encoder.encode([ev.message_id for ev in kept]),
                _encoder.encode(([pids[i] for i in keep], kept_markers)),
            )
            count += 1
        return count


def _fit_ints(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _fit_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fit_ints(v) for v in value]
    if type(value) is int and not -(1 << 63) <= value < (1 << 64):
        return float(value)
    return value


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id_factory() -> Callable[[], str]:
    """messageIds for events that came without one: unique without a uuid4 per event."""
    prefix = "tsg-" + os.urandom(6).hex() + "-"
    counter = iter(range(1, 1 << 62))
    return lambda: prefix + str(next(counter))
