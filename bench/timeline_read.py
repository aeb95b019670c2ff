"""The karte's timeline read (a person's 1,000 newest events) on a bulk file: p50/p99 over 100 persons.

PYTHONPATH=src python bench/timeline_read.py FILE [--layout steady|sorted|table]

`table` reads the file as generated (one `events` table in time order: the layout before
the runs). `sorted` and `steady` work on a copy next to FILE, laid out as the store lays
out events (`storage/event_runs.py`): `sorted` as the store's migration leaves an old
file (one run, sorted in the background: its time is reported), `steady` as a store that
took the same events one by one would hold them (runs of each tier the merge policy
leaves, and an unsorted hot table).
"""

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import duckdb

from tsunagu.sql.timeline import timeline_query
from tsunagu.storage.duckdb_analytics import DuckDBAnalytics
from tsunagu.storage.event_runs import HOT, Run, pick_merge, run_name, view_sql

p = argparse.ArgumentParser()
p.add_argument("file", type=Path)
p.add_argument("--layout", choices=["steady", "sorted", "table"], default="steady")
p.add_argument("--run-rows", type=int, default=1_000_000, help="the store's default")
p.add_argument("--fanout", type=int, default=4, help="the store's default")
args = p.parse_args()

path, info = args.file, {"layout": args.layout}
if args.layout != "table":
    path = args.file.with_name(args.file.stem + f"-{args.layout}.duckdb")
    shutil.copyfile(args.file, path)
    t = time.perf_counter()
    store = DuckDBAnalytics(path, memory_limit="512MB", run_rows=args.run_rows, fanout=args.fanout)
    info["migrate_s"] = round(time.perf_counter() - t, 1)
    if args.layout == "sorted":
        t = time.perf_counter()
        store.start(lambda after, limit: [], lambda rec, batch: None, 3600)
        while pick_merge(store.runs(), store.run_rows, store.fanout) or store._merging:
            time.sleep(0.2)
        info["sort_s"] = round(time.perf_counter() - t, 1)
    else:
        # the runs the policy leaves after sealing every `run_rows` rows, oldest first
        total = store.runs()[0].rows
        runs: list[Run] = []
        # the hot table half full (between seals it holds 0 to run_rows rows)
        for i in range(max(0, total - args.run_rows // 2) // args.run_rows):
            runs.append(Run(f"r{i}", i * args.run_rows, args.run_rows, True))
            while todo := pick_merge(runs, args.run_rows, args.fanout):
                merged = Run(f"m{i}", todo[0].first_seq, sum(r.rows for r in todo), True)
                runs = sorted([r for r in runs if r not in todo] + [merged], key=lambda r: r.first_seq)
        con, (old,) = store._con, store.runs()
        t = time.perf_counter()
        made = []
        for n, r in enumerate(runs, start=100):  # rows numbered by seq order (the file's seq is the row)
            name = run_name(n)
            con.execute(
                f"CREATE TABLE {name} AS SELECT * FROM {old.name} WHERE seq > ? AND seq <= ? ORDER BY person_id, seq",
                [r.first_seq, r.first_seq + r.rows],
            )
            made.append(Run(name, r.first_seq + 1, r.rows, True))
        hot_from = runs[-1].first_seq + runs[-1].rows if runs else 0
        con.execute(f"INSERT INTO {HOT} SELECT * FROM {old.name} WHERE seq > ?", [hot_from])
        con.execute(f"DROP TABLE {old.name}")
        con.execute("DELETE FROM event_runs")
        for r in made:
            con.execute("INSERT INTO event_runs VALUES (?, ?, ?, true)", [r.name, r.first_seq, r.rows])
        con.execute(view_sql(made, store._columns))
        info |= {"build_s": round(time.perf_counter() - t, 1), "runs": [r.rows for r in made],
                 "hot_rows": total - hot_from}  # fmt: skip
    store.close()

con = duckdb.connect(str(path), read_only=True, config={"threads": 2, "memory_limit": "512MB"})
# persons of all activity levels: ids drawn from events rows (busy persons more often), plus their aliases
# (by seq, so every layout of the same file reads the same persons: `rows_sum` must agree)
pids = [
    r[0]
    for r in con.execute(
        "SELECT person_id FROM events WHERE hash(seq) % 997 = 0 ORDER BY hash(seq) LIMIT 200"
    ).fetchall()
]
aliases: dict[str, list[str]] = {}
for alias, pid in con.execute("SELECT alias, person_id FROM person_aliases").fetchall():
    aliases.setdefault(pid, []).append(alias)
times, rows = [], []
for pid in pids[:100]:
    ids = [pid, *aliases.get(pid, [])]
    sql, params = timeline_query(ids, limit=1000)
    t = time.perf_counter()
    n = len(con.execute(sql, params).fetchall())
    times.append((time.perf_counter() - t) * 1e3)
    rows.append(n)
times.sort()
print(
    json.dumps(
        info
        | {
            "reads": len(times),
            "p50_ms": round(statistics.median(times), 1),
            "p99_ms": round(times[int(len(times) * 0.99) - 1], 1),
            "max_ms": round(times[-1], 1),
            "rows_median": statistics.median(rows),
            "rows_max": max(rows),
            "rows_sum": sum(rows),
        }
    )
)
con.close()
if path != args.file:
    path.unlink()
    sys.exit(0)
