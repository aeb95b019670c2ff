"""messageId de-duplication, exact and bounded: recent ids in memory, the rest on disk.

    seen(id) ─▶ pending (added, not yet durable) ─▶ recent (the newest durable ids, bounded)
            ─▶ Bloom filter of each time bucket ── hit ──▶ that bucket's table: exact answer

The window (config.dedupe_hours) is cut into `generations` time buckets. Each bucket has
a table in the log's SQLite file, written by the log's writer thread in the same
transaction as the records it indexes (`SqliteLog(index=...)`), so the index is exactly
as durable as the log at no extra fsync; and an mmap-backed Bloom filter file
(pybloomfiltermmap3) that answers a new id — the common case — without touching the
table. A filter hit is confirmed on the table, so a false positive costs one lookup and
never drops a real event. A bucket whose newest possible id is older than the window is
dropped whole: its table, its filter files, its ids in memory.

After a restart (kill -9 included) the filter files are opened as they are and the ids
of the log records after the seq of the last `checkpoint` are added again (adding twice
is harmless); a bucket whose filter is missing or unreadable is rebuilt from its table.
So a restart reads the log tail since the last checkpoint, not the window.
docs/decisions/0002-dedupe.md has the measurements behind these choices.
"""

from __future__ import annotations

import collections
import json
import os
import re
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec
import pybloomfilter

__all__ = ["SqliteDeduper"]

_ids_decoder = msgspec.msgpack.Decoder(list[str])
_TABLE = re.compile(r"^dedupe_(\d+)_(\d+)$")
_META = "filters.json"
_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'dedupe%'"
# WITHOUT ROWID: the id is the key, one B-tree a bucket (43 bytes an id on disk)
_CREATE = "CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, received_at INTEGER NOT NULL) WITHOUT ROWID"
_MIN_CAPACITY = 1 << 16  # ids in a fresh bucket's first filter (80 KB at 1 %)


class _Bucket:
    """The ids received in [start, end): one table, one or more filters (the last grows)."""

    __slots__ = ("capacity", "count", "end", "filters", "key", "start", "table", "width")

    def __init__(self, width: int, key: int) -> None:
        self.width, self.key = width, key
        self.start, self.end = key * width, (key + 1) * width
        self.table = f"dedupe_{width}_{key}"
        self.filters: list[pybloomfilter.BloomFilter] = []
        self.count = 0  # ids added to the last filter
        self.capacity = 0  # what the last filter was sized for

    def __contains__(self, key: bytes) -> bool:
        return any(key in f for f in self.filters)

    def total(self) -> int:
        return sum(f.capacity for f in self.filters[:-1]) + self.count


class SqliteDeduper:
    """The `core.ports.Deduper` contract, bounded; also the log's `LogIndex`."""

    def __init__(
        self,
        directory: Path,
        log_path: Path,
        window_ms: int,
        *,
        memory_ids: int = 100_000,
        generations: int = 4,
        error_rate: float = 0.01,
    ) -> None:
        self.directory = directory  # the filter files
        self.log_path = log_path
        self.window_ms = window_ms
        self.memory_ids = memory_ids
        self.error_rate = error_rate
        # whole minutes, so a bucket's table name is stable for a window
        self.width = max(60_000, -(-window_ms // generations // 60_000) * 60_000)
        self.now = 0
        self._cutoff = -(1 << 62)
        self._pending: dict[str, int] = {}  # added, not yet in a committed log record
        # the newest committed ids, oldest first; an OrderedDict because popping a dict's
        # first key again and again is O(n): iteration skips the deleted slots
        self._recent: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._committed: collections.deque[list[tuple[int, int, list[str]]]] = collections.deque()
        self._buckets: dict[tuple[int, int], _Bucket] = {}
        self._order: list[_Bucket] = []  # newest first
        self._drained_seq = 0  # every committed record up to here is in memory or a filter
        self._con: sqlite3.Connection | None = None
        self._staged: list[tuple[int, int, list[str]]] = []  # the writer's group in flight
        self._writer_key: int | None = None  # the bucket the writer last made sure of
        self._staged_key: int | None = None
        self.disk_lookups = 0  # filter hits confirmed on a table (false positives included)
        self.tail_records = 0  # log records read by the last `open`
        self.rebuilt = 0  # buckets whose filter the last `open` rebuilt from their table

    # -- lifecycle ----------------------------------------------------------------------

    def open(self, now: int) -> None:
        """Load the filters, drop what expired, add the log tail since the last checkpoint."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._con = con = sqlite3.connect(self.log_path, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA busy_timeout=10000")
        self.now = now
        self._cutoff = now - self.window_ms
        meta = self._read_meta()
        for width, key in self._tables():
            bucket = _Bucket(width, key)
            if bucket.end <= self._cutoff:
                con.execute(f"DROP TABLE IF EXISTS {bucket.table}")
                continue
            if meta is None or not self._open_filters(bucket):
                self._rebuild(bucket)
                self.rebuilt += 1
            self._buckets[(width, key)] = bucket
        for path in self.directory.glob("*.bloom"):  # filters of dropped buckets
            width, key = (int(v) for v in path.name.split(".")[0].split("_"))
            if (width, key) not in self._buckets:
                path.unlink()
        self._sort()
        last = con.execute("SELECT coalesce(max(seq), 0) FROM log").fetchone()[0]
        if meta is not None:
            rows = con.execute(
                "SELECT seq, received_at, ids FROM log WHERE seq > ? AND kind = 'events' AND received_at >= ?",
                (meta["seq"], self._cutoff),
            )
            for _, received_at, blob in rows:
                self.tail_records += 1
                bucket = self._bucket_for(received_at)
                for mid in _ids_decoder.decode(blob):
                    self._filter_add(bucket, mid.encode())
        self._drained_seq = last

    def checkpoint(self) -> None:
        """Flush the filters, then say which log seq they cover (a restart adds the rest)."""
        seq = self._drained_seq  # first: the filters hold at least this much when flushed
        for bucket in list(self._order):
            for f in list(bucket.filters):
                f.sync()
        tmp = self.directory / f"{_META}.{os.getpid()}.{id(self):x}.tmp"  # a writer's own: never renamed twice
        with open(tmp, "w") as out:
            json.dump({"seq": seq, "width": self.width, "error_rate": self.error_rate}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.directory / _META)

    def close(self) -> None:
        """Close the files, writing nothing: `checkpoint` is what a clean stop adds."""
        for bucket in self._order:
            for f in bucket.filters:
                f.close()
        self._buckets.clear()
        self._order = []
        if self._con is not None:
            self._con.close()
            self._con = None

    # -- the hot path (the event loop) ---------------------------------------------------

    def advance(self, now: int) -> None:
        if self._committed:
            self._drain()
        if now <= self.now:
            return
        self.now = now
        self._cutoff = cutoff = now - self.window_ms
        if self._order and self._order[-1].end <= cutoff:
            self._expire(cutoff)
        recent = self._recent
        while recent:
            mid, at = recent.popitem(last=False)
            if at >= cutoff:
                recent[mid] = at
                recent.move_to_end(mid, last=False)
                break

    def seen(self, message_id: str) -> bool:
        if message_id in self._pending:
            return True
        at = self._recent.get(message_id)
        if at is not None:  # the newest committed copy of this id
            return at >= self._cutoff
        key = message_id.encode()
        for bucket in self._order:
            if key in bucket and (at := self._on_disk(bucket, message_id)) is not None and at >= self._cutoff:
                return True
        return False

    def add(self, message_ids: Iterable[str], now: int) -> None:
        self.advance(now)
        at = self.now
        pending = self._pending
        for mid in message_ids:
            pending[mid] = at

    def discard(self, message_ids: Iterable[str]) -> None:
        for mid in message_ids:
            self._pending.pop(mid, None)

    def __len__(self) -> int:
        """Ids held in memory (pending and recent); the rest are on disk."""
        return len(self._pending) + len(self._recent)

    def stats(self) -> dict[str, int]:
        return {
            "pending": len(self._pending),
            "recent": len(self._recent),
            "buckets": len(self._order),
            "filters": sum(len(b.filters) for b in self._order),
            "filter_bytes": sum(f.num_bits // 8 for b in self._order for f in b.filters),
            "disk_lookups": self.disk_lookups,
        }

    def _drain(self) -> None:
        """Move the ids of committed records from pending to recent and their filter."""
        pending, recent, committed = self._pending, self._recent, self._committed
        bucket: _Bucket | None = None
        while committed:
            for seq, received_at, ids in committed.popleft():
                if bucket is None or not bucket.start <= received_at < bucket.end:
                    bucket = self._bucket_for(received_at)
                for mid in ids:
                    pending.pop(mid, None)
                    recent[mid] = received_at
                    recent.move_to_end(mid)
                    self._filter_add(bucket, mid.encode())
                self._drained_seq = seq
        over = len(recent) - self.memory_ids
        for _ in range(max(over, 0)):
            recent.popitem(last=False)

    def _on_disk(self, bucket: _Bucket, message_id: str) -> int | None:
        assert self._con is not None
        self.disk_lookups += 1
        try:
            row = self._con.execute(f"SELECT received_at FROM {bucket.table} WHERE id = ?", (message_id,)).fetchone()
        except sqlite3.OperationalError:  # dropped by the writer: expired
            return None
        return row[0] if row else None

    # -- buckets and filters ---------------------------------------------------------------

    def _bucket_for(self, at: int) -> _Bucket:
        key = (self.width, at // self.width)
        bucket = self._buckets.get(key)
        if bucket is None:  # the writer puts new ids in a table of today's width too
            bucket = self._buckets[key] = _Bucket(*key)
            self._sort()
        return bucket

    def _sort(self) -> None:
        self._order = sorted(self._buckets.values(), key=lambda b: b.end, reverse=True)

    def _filter_add(self, bucket: _Bucket, key: bytes) -> None:
        if bucket.count >= bucket.capacity:
            # size a new bucket like the last full one, so it holds one filter
            previous = max((b.total() for b in self._order if b is not bucket), default=0)
            capacity = max(_MIN_CAPACITY, bucket.capacity * 2, previous + previous // 4 if not bucket.filters else 0)
            self._new_filter(bucket, capacity)
        bucket.filters[-1].add(key)
        bucket.count += 1

    def _new_filter(self, bucket: _Bucket, capacity: int) -> None:
        path = self.directory / f"{bucket.width}_{bucket.key}.{len(bucket.filters)}.bloom"
        bucket.filters.append(pybloomfilter.BloomFilter(capacity, self.error_rate, str(path)))
        bucket.count, bucket.capacity = 0, capacity

    def _open_filters(self, bucket: _Bucket) -> bool:
        paths = sorted(
            self.directory.glob(f"{bucket.width}_{bucket.key}.*.bloom"), key=lambda p: int(p.name.split(".")[1])
        )
        filters = []
        try:
            for path in paths:
                filters.append(pybloomfilter.BloomFilter.open(str(path), "rw"))
        except (OSError, ValueError):
            for f in filters:
                f.close()
            return False
        if not filters:
            return False
        bucket.filters = filters
        bucket.capacity = filters[-1].capacity
        bucket.count = min(filters[-1].approx_len, bucket.capacity)  # an estimate from the bits
        return True

    def _rebuild(self, bucket: _Bucket) -> None:
        """A filter from the bucket's table: after a crash before its first checkpoint."""
        assert self._con is not None
        for path in self.directory.glob(f"{bucket.width}_{bucket.key}.*.bloom"):
            path.unlink()
        bucket.filters = []
        count = self._con.execute(f"SELECT count(*) FROM {bucket.table}").fetchone()[0]
        self._new_filter(bucket, max(_MIN_CAPACITY, count + count // 4))
        f = bucket.filters[0]
        for (mid,) in self._con.execute(f"SELECT id FROM {bucket.table}"):
            f.add(mid.encode())
        bucket.count = count

    def _expire(self, cutoff: int) -> None:
        for key, bucket in list(self._buckets.items()):
            if bucket.end <= cutoff:
                del self._buckets[key]
                for f in bucket.filters:
                    name = f.filename
                    f.close()
                    Path(name).unlink(missing_ok=True)
        self._sort()  # the table goes with the writer's next group (`write`)

    def _read_meta(self) -> dict[str, int] | None:
        try:
            meta = json.loads((self.directory / _META).read_text())
        except (OSError, ValueError):
            return None
        # another width puts the tail's ids in other tables: rebuild every filter instead
        if (meta.get("error_rate"), meta.get("width")) != (self.error_rate, self.width):
            return None
        if not isinstance(meta.get("seq"), int):
            return None
        return meta

    def _tables(self) -> list[tuple[int, int]]:
        assert self._con is not None
        names = self._con.execute(_TABLES)
        return [(int(m[1]), int(m[2])) for (name,) in names if (m := _TABLE.match(name))]

    # -- the log's index (the log's writer thread) -------------------------------------------

    def write(self, con: sqlite3.Connection, records: Sequence[tuple[int, int, bytes]]) -> None:
        """Index a group's ids in its transaction, one statement a bucket."""
        staged = [(seq, received_at, _ids_decoder.decode(blob)) for seq, received_at, blob in records]
        by_key: dict[int, list[tuple[str, int]]] = {}
        for _, received_at, ids in staged:
            by_key.setdefault(received_at // self.width, []).extend((mid, received_at) for mid in ids)
        newest = max(by_key)
        if newest != self._writer_key:  # a new bucket: make its table, drop what expired
            cutoff = max(r for _, r, _ in staged) - self.window_ms
            for (name,) in con.execute(_TABLES).fetchall():
                m = _TABLE.match(name)
                if m and (int(m[2]) + 1) * int(m[1]) <= cutoff:
                    con.execute(f"DROP TABLE {name}")
        for key, rows in by_key.items():
            table = f"dedupe_{self.width}_{key}"
            if key != self._writer_key:
                con.execute(_CREATE.format(table=table))
            rows.sort()  # neighbouring keys share pages of the B-tree
            con.executemany(f"INSERT OR REPLACE INTO {table} (id, received_at) VALUES (?, ?)", rows)
        self._staged, self._staged_key = staged, newest

    def committed(self, records: Sequence[tuple[int, int, bytes]]) -> None:
        """The group is durable: hand its ids to the event loop (drained by `advance`)."""
        self._writer_key = self._staged_key  # only a committed CREATE TABLE counts as made
        self._committed.append(self._staged)
        self._staged = []
