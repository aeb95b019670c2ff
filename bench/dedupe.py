"""messageId de-dup at scale: memory, lookups, adds and restart of the bounded index.

    python bench/dedupe.py                      # 1,000,000 and 10,000,000 ids (~4 min)
    python bench/dedupe.py --ids 1000000        # one point
    python bench/dedupe.py --ids 100000000      # the issue's point (about an hour here)

Each point is a fresh data directory: the real SqliteLog (WAL, synchronous=FULL, group
commit) with the real SqliteDeduper as its index, fed like WorkspacePipeline.submit
feeds it — requests of 100 new UUID-shaped ids, each looked up (`seen`), added and
logged — with up to 64 requests in flight and the ids spread evenly over the
window (7 days), so every id is still in the window at the end. Log bodies are empty:
only the de-dup work is measured. Then lookups of new ids and of old duplicates (past
the in-memory recent set, so answered by filter + table), a clean restart (after a
checkpoint) and a crash restart (no checkpoint for the last 10 seconds of requests).

Prints one JSON object. RSS is the process's resident set (psutil) minus the RSS before
the point; tracemalloc (Python allocations only) is measured on a separate run of
--tracemalloc-ids ids, because tracing slows every allocation. The filter files are
mmap'd, so they are in RSS, not in tracemalloc.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import msgspec
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tsunagu.storage.sqlite_dedupe import SqliteDeduper
from tsunagu.storage.sqlite_log import SqliteLog

WINDOW = 7 * 24 * 3_600_000
START = 1_790_000_000_000
REQUEST = 100
IN_FLIGHT = 64
_encode = msgspec.msgpack.encode


def _ids(n: int, prefix: str) -> list[str]:
    # UUID-shaped (36 characters), like the Segment SDKs' messageIds
    base = os.urandom(8).hex()
    return [f"{base}-{prefix}{i:011d}-4000-8000-000000000000"[:36] for i in range(n)]


class _Feed:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.seq = 0
        self.done = threading.Semaphore(IN_FLIGHT)
        self.open(START)

    def open(self, now: int) -> float:
        started = time.perf_counter()
        self.dedupe = SqliteDeduper(self.directory / "dedupe", self.directory / "log.sqlite", WINDOW)
        self.log = SqliteLog(self.directory / "log.sqlite", index=self.dedupe)
        self.seq = self.log.last_seq()
        self.dedupe.open(now)
        return time.perf_counter() - started

    def _finished(self, result: object) -> None:
        assert not isinstance(result, BaseException), result
        self.done.release()

    def request(self, ids: list[str], now: int) -> None:
        dedupe = self.dedupe
        dedupe.advance(now)
        fresh = [m for m in ids if not dedupe.seen(m)]
        dedupe.add(fresh, now)
        self.done.acquire()
        self.seq += 1
        self.log.append(self.seq, "events", now, b"", _encode(fresh), b"", self._finished)

    def drain(self) -> None:
        for _ in range(IN_FLIGHT):
            self.done.acquire()
        for _ in range(IN_FLIGHT):
            self.done.release()

    def close(self) -> None:
        self.log.close()
        self.dedupe.close()


def _rss() -> int:
    return psutil.Process().memory_info().rss


def _fill(feed: _Feed, n: int, span: int) -> tuple[float, int]:
    """n ids in requests of REQUEST, spread over `span` ms; returns (seconds, last time)."""
    started = time.perf_counter()
    now = START
    step = max(1, span // max(1, n // REQUEST))
    base = os.urandom(8).hex()
    for i in range(0, n, REQUEST):  # made as they go: no list of n ids in the RSS
        now += step
        ids = [f"{base}-{j:014d}-4000-8000-00000000"[:36] for j in range(i, min(n, i + REQUEST))]
        feed.request(ids, now)
    feed.drain()
    feed.dedupe.advance(now)
    return time.perf_counter() - started, now


def point(n: int, root: Path) -> dict[str, object]:
    directory = root / f"ids-{n}"
    gc.collect()
    rss0 = _rss()
    feed = _Feed(directory)
    seconds, now = _fill(feed, n, WINDOW - 3_600_000)
    gc.collect()
    rss = _rss() - rss0
    stats = feed.dedupe.stats()
    disk = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    filters = sum(f.stat().st_size for f in (directory / "dedupe").glob("*.bloom"))

    # lookups: new ids, and duplicates older than the recent set (filter + table)
    probes = 200_000
    new = _ids(probes, "new")
    lookups0 = feed.dedupe.disk_lookups
    t = time.perf_counter()
    assert not any(feed.dedupe.seen(m) for m in new)
    new_s = time.perf_counter() - t
    new_disk = feed.dedupe.disk_lookups - lookups0
    old = [m for m in _ids_sample(feed, probes)]
    t = time.perf_counter()
    assert all(feed.dedupe.seen(m) for m in old)
    dup_s = time.perf_counter() - t

    # restart after a clean stop, then after a crash 10 s of requests past a checkpoint
    feed.dedupe.checkpoint()
    feed.close()
    clean = feed.open(now)
    feed.dedupe.checkpoint()
    ids = _ids(100 * 10 * REQUEST, "tail")  # 10 s at 10,000 events/s
    for i in range(0, len(ids), REQUEST):
        now += 1
        feed.request(ids[i : i + REQUEST], now)
    feed.drain()
    feed.close()  # no checkpoint: like a kill -9
    crash = feed.open(now)
    tail_records = feed.dedupe.tail_records
    assert feed.dedupe.seen(ids[-1]) and feed.dedupe.seen(old[0])
    feed.close()
    shutil.rmtree(directory)
    return {
        "ids": n,
        "rss_delta_bytes": rss,
        "rss_bytes_per_id": round(rss / n, 2),
        "filter_bytes": stats["filter_bytes"],
        "filter_files": stats["filters"],
        "buckets": stats["buckets"],
        "in_memory_ids": stats["recent"] + stats["pending"],
        "disk_bytes": disk,
        "disk_bytes_per_id": round((disk - filters) / n, 1),
        "add_ids_per_s": round(n / seconds),
        "lookup_new_per_s": round(probes / new_s),
        "lookup_new_disk_fraction": round(new_disk / probes, 4),
        "lookup_duplicate_per_s": round(probes / dup_s),
        "restart_clean_s": round(clean, 3),
        "restart_crash_s": round(crash, 3),
        "restart_crash_tail_records": tail_records,
    }


def _ids_sample(feed: _Feed, k: int) -> list[str]:
    """k committed ids spread over the whole window, straight from the index tables."""
    con = feed.log._read
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE name LIKE 'dedupe%'")]
    per = k // len(tables) + 1
    out: list[str] = []
    for table in tables:
        out += [r[0] for r in con.execute(f"SELECT id FROM {table} ORDER BY random() LIMIT ?", (per,))]
    return out[:k]


def traced(n: int, root: Path) -> dict[str, int]:
    tracemalloc.start()
    feed = _Feed(root / "traced")
    _fill(feed, n, WINDOW - 3_600_000)
    current, peak = tracemalloc.get_traced_memory()
    feed.close()
    tracemalloc.stop()
    shutil.rmtree(root / "traced")
    return {"ids": n, "tracemalloc_current_bytes": current, "tracemalloc_peak_bytes": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--tracemalloc-ids", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="where the data goes (default: a temp dir)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dedupe-bench-", dir=args.dir))
    try:
        points = [point(n, root) for n in args.ids]
        trace = traced(args.tracemalloc_ids, root) if args.tracemalloc_ids else None
    finally:
        shutil.rmtree(root, ignore_errors=True)
    big = points[-1]
    # filters grow linearly with ids; memory ids and caches do not
    per_id = big["filter_bytes"] / big["ids"]
    fixed = big["rss_delta_bytes"] - big["filter_bytes"]
    print(
        json.dumps(
            {
                "window_hours": WINDOW // 3_600_000,
                "points": points,
                "tracemalloc": trace,
                "projected_rss_delta_at_100M_bytes": round(fixed + per_id * 100_000_000),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
