"""Which embedded store holds the event log? Durable appends, measured.

Each candidate appends requests of 100 events (msgpack, ~450 bytes an event, as the
pipeline encodes them) in groups, one durable commit (fsync) per group, the way group
commit works under load: with 32 connections in flight a group holds up to 32 requests.

    python bench/log_stores.py [--seconds 4]

Prints JSON: events/s and the commit latency (p50/p99 ms) per store and group size.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import msgspec

EVENTS_PER_REQUEST = 100


def _request(i: int) -> list[dict]:
    return [
        {
            "message_id": f"m-{i}-{j}",
            "type": "track",
            "event": "view",
            "anonymous_id": f"a-{(i * 7 + j) % 20000}",
            "timestamp": 1_790_000_000_000 + i,
            "channel": "web",
            "properties": {"sku": f"SKU{j:05d}", "price": 12900, "category": "アウター", "brand": "TSUNAGU"},
            "context": {"page": {"url": "https://shop.example.jp/items/SKU", "title": "ウールコート"}},
        }
        for j in range(EVENTS_PER_REQUEST)
    ]


class SqliteBlob:
    """One row per request (what the pipeline does)."""

    name = "sqlite_wal_row_per_request"

    def __init__(self, d: Path) -> None:
        self.con = sqlite3.connect(d / "log.sqlite", isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=FULL")
        self.con.execute("CREATE TABLE log (seq INTEGER PRIMARY KEY, body BLOB)")

    def commit(self, group: list[bytes], events: list[list[dict]]) -> None:
        self.con.execute("BEGIN")
        self.con.executemany("INSERT INTO log (body) VALUES (?)", [(b,) for b in group])
        self.con.execute("COMMIT")


class SqliteRows:
    """One row per event."""

    name = "sqlite_wal_row_per_event"

    def __init__(self, d: Path) -> None:
        self.con = sqlite3.connect(d / "log.sqlite", isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=FULL")
        self.con.execute("CREATE TABLE log (seq INTEGER PRIMARY KEY, message_id TEXT, body BLOB)")
        self.enc = msgspec.msgpack.Encoder()

    def commit(self, group: list[bytes], events: list[list[dict]]) -> None:
        enc = self.enc.encode
        self.con.execute("BEGIN")
        self.con.executemany(
            "INSERT INTO log (message_id, body) VALUES (?, ?)", [(e["message_id"], enc(e)) for r in events for e in r]
        )
        self.con.execute("COMMIT")


class AppendFile:
    """A plain append-only file, length-prefixed records, fsync per group."""

    name = "append_file_fsync"

    def __init__(self, d: Path) -> None:
        self.fd = os.open(d / "log.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def commit(self, group: list[bytes], events: list[list[dict]]) -> None:
        os.write(self.fd, b"".join(len(b).to_bytes(4, "little") + b for b in group))
        os.fsync(self.fd)


class DuckDBBlob:
    """DuckDB, one row per request."""

    name = "duckdb_row_per_request"

    def __init__(self, d: Path) -> None:
        self.con = duckdb.connect(str(d / "log.duckdb"))
        self.con.execute("CREATE TABLE log (seq BIGINT, body BLOB)")
        self.seq = 0

    def commit(self, group: list[bytes], events: list[list[dict]]) -> None:
        rows = []
        for b in group:
            self.seq += 1
            rows.append((self.seq, b))
        self.con.execute("BEGIN")
        self.con.executemany("INSERT INTO log VALUES (?, ?)", rows)
        self.con.execute("COMMIT")


def measure(store_cls: type, group_size: int, seconds: float, pool: list[tuple[bytes, list[dict]]]) -> dict:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        store = store_cls(Path(d))
        latencies: list[float] = []
        events = 0
        i = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            chunk = [pool[(i + k) % len(pool)] for k in range(group_size)]
            i += group_size
            t0 = time.perf_counter()
            store.commit([c[0] for c in chunk], [c[1] for c in chunk])
            latencies.append((time.perf_counter() - t0) * 1000)
            events += group_size * EVENTS_PER_REQUEST
        elapsed = seconds
        latencies.sort()
        return {
            "store": store_cls.name,
            "group_requests": group_size,
            "events_per_s": round(events / elapsed),
            "commit_p50_ms": round(statistics.median(latencies), 2),
            "commit_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    enc = msgspec.msgpack.Encoder()
    pool = [(enc.encode(r), r) for r in (_request(i) for i in range(64))]
    results = []
    for cls in (SqliteBlob, SqliteRows, AppendFile, DuckDBBlob):
        for group in (1, 8, 32):
            results.append(measure(cls, group, args.seconds, pool))
            print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"events_per_request": EVENTS_PER_REQUEST, "results": results}, indent=2))


if __name__ == "__main__":
    main()
