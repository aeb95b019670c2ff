"""The person store's embedded engine, chosen by measurement: SQLite against LMDB.

    python bench/person_store.py [--people 1000000]

Both hold what `storage.sqlite_state` holds: one msgpack row a person (a person of the
scale benchmark: identify traits, two identifiers, a few counters and computed-trait
buckets) and the identity index (two keys a person), written in checkpoints of
`--chunk` persons a transaction. Figures: checkpoint writes/s, random point reads/s
(person and key: what a cold event costs), a full scan/s (a new segment's first pass),
disk bytes a person, and the resident memory the reads leave. One JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lmdb
import msgspec
import psutil  # type: ignore[import-untyped]

from tsunagu.core.people import Person


def person(i: int, rng: random.Random) -> tuple[str, bytes, list[str]]:
    pid = f"p_{i:020x}"
    uid = f"M{i:08d}"
    days = {20000 + rng.randrange(0, 365): rng.randrange(1, 4) for _ in range(rng.randrange(1, 6))}
    p = Person(
        person_id=pid,
        identifiers={"user_id": [uid], "anonymous_id": ["a-" + uid]},
        trait_writes={"member_rank": [1_790_000_000_000, f"{uid}-i", "gold", False]},
        first_seen=1_790_000_000_000,
        last_seen=1_790_000_100_000,
        channels={"web": 3},
        event_count=3,
        counters={'["view", null, null, []]': days},
        computed={"ltv": [[20000, [1, 5000, 5000, 5000]]]},
        segments=["s001", "s017"],
    )
    return pid, msgspec.msgpack.encode(p), [f"user_id:{uid}", f"anonymous_id:a-{uid}"]


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def bench_sqlite(d: Path, rows: list[tuple[str, bytes, list[str]]], reads: list[int], chunk: int) -> dict[str, Any]:
    con = sqlite3.connect(d / "state.sqlite", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE persons (person_id TEXT PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID")
    con.execute("CREATE TABLE ident (key TEXT PRIMARY KEY, person_id TEXT NOT NULL) WITHOUT ROWID")
    t = time.perf_counter()
    for s in range(0, len(rows), chunk):
        part = rows[s : s + chunk]
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT OR REPLACE INTO persons VALUES (?, ?)", [(p, b) for p, b, _ in part])
        con.executemany("INSERT OR REPLACE INTO ident VALUES (?, ?)", [(k, p) for p, _, ks in part for k in ks])
        con.execute("COMMIT")
    write_s = time.perf_counter() - t
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rss = psutil.Process().memory_info().rss
    t = time.perf_counter()
    for i in reads:
        pid = con.execute("SELECT person_id FROM ident WHERE key = ?", (rows[i][2][0],)).fetchone()[0]
        con.execute("SELECT body FROM persons WHERE person_id = ?", (pid,)).fetchone()
    read_s = time.perf_counter() - t
    rss_reads = psutil.Process().memory_info().rss - rss
    t = time.perf_counter()
    n, after = 0, ""
    while page := con.execute(
        "SELECT person_id, body FROM persons WHERE person_id > ? ORDER BY person_id LIMIT 2000", (after,)
    ).fetchall():
        n += len(page)
        after = page[-1][0]
    scan_s = time.perf_counter() - t
    con.close()
    return _result(rows, reads, write_s, read_s, scan_s, n, _du(d), rss_reads)


def bench_lmdb(d: Path, rows: list[tuple[str, bytes, list[str]]], reads: list[int], chunk: int) -> dict[str, Any]:
    env = lmdb.open(str(d / "state.lmdb"), map_size=64 << 30, max_dbs=2, sync=False, metasync=False)
    persons = env.open_db(b"persons")
    ident = env.open_db(b"ident")
    t = time.perf_counter()
    for s in range(0, len(rows), chunk):
        with env.begin(write=True) as txn:
            for p, b, ks in rows[s : s + chunk]:
                txn.put(p.encode(), b, db=persons)
                for k in ks:
                    txn.put(k.encode(), p.encode(), db=ident)
        env.sync(True)
    write_s = time.perf_counter() - t
    rss = psutil.Process().memory_info().rss
    t = time.perf_counter()
    with env.begin() as txn:
        for i in reads:
            pid = txn.get(rows[i][2][0].encode(), db=ident)
            txn.get(pid, db=persons)
    read_s = time.perf_counter() - t
    rss_reads = psutil.Process().memory_info().rss - rss
    t = time.perf_counter()
    n = 0
    with env.begin() as txn:
        for _k, _v in txn.cursor(db=persons):
            n += 1
    scan_s = time.perf_counter() - t
    env.close()
    return _result(rows, reads, write_s, read_s, scan_s, n, _du(d), rss_reads)


def _result(rows: list[Any], reads: list[int], write_s: float, read_s: float, scan_s: float, n: int, disk: int,
            rss_reads: int) -> dict[str, Any]:  # fmt: skip
    return {
        "checkpoint_writes_per_s": round(len(rows) / write_s),
        "cold_reads_per_s": round(len(reads) / read_s),
        "cold_read_us": round(read_s * 1e6 / len(reads), 2),
        "scan_persons_per_s": round(n / scan_s),
        "disk_bytes_per_person": round(disk / len(rows)),
        "rss_after_reads_bytes": rss_reads,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--people", type=int, default=1_000_000)
    p.add_argument("--reads", type=int, default=200_000)
    p.add_argument("--chunk", type=int, default=20_000, help="persons a checkpoint transaction")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    rng = random.Random(args.seed)
    rows = [person(i, rng) for i in range(args.people)]
    reads = [rng.randrange(args.people) for _ in range(args.reads)]
    out: dict[str, Any] = {"people": args.people, "body_bytes_avg": round(sum(len(b) for _, b, _ in rows) / len(rows))}
    for name, fn in (("sqlite", bench_sqlite), ("lmdb", bench_lmdb)):
        d = Path(tempfile.mkdtemp(prefix=f"tsunagu-ps-{name}-"))
        try:
            out[name] = fn(d, rows, reads, args.chunk)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        print(f"[person_store] {name}: {json.dumps(out[name])}", file=sys.stderr, flush=True)
    out["cpu_count"] = os.cpu_count()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
