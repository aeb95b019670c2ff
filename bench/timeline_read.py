"""The karte's timeline read (a person's 1,000 newest events) on a bulk file: p50/p99 over 100 persons.

PYTHONPATH=src python bench/timeline_read.py FILE
"""

import statistics
import sys
import time

import duckdb

from tsunagu.sql.timeline import timeline_query

path = sys.argv[1]
con = duckdb.connect(path, read_only=True, config={"threads": 2, "memory_limit": "512MB"})
# persons of all activity levels: ids drawn from events rows (busy persons more often), plus their aliases
pids = [r[0] for r in con.execute("SELECT person_id FROM events USING SAMPLE 200 ROWS").fetchall()]
aliases = {}
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
    {
        "reads": len(times),
        "p50_ms": round(statistics.median(times), 1),
        "p99_ms": round(times[int(len(times) * 0.99) - 1], 1),
        "max_ms": round(times[-1], 1),
        "rows_median": statistics.median(rows),
        "rows_max": max(rows),
    }
)
