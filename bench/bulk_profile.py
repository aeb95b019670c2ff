"""DuckDB's profile of the bulk phase's 5-condition segment on its file, per operator.

    PYTHONPATH=src python bench/bulk_profile.py FILE [hot]   # hot: compile with the hot columns

Operator times are summed over DuckDB's threads; operators under 10 ms are left out.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from segments import SEGMENT_5, TIMEZONE

from tsunagu.core.segments import parse_rule
from tsunagu.sql.segments import compile_segment


def walk(node: dict[str, Any], depth: int = 0) -> None:
    keys = ("Table", "Filters", "Groups", "Aggregates", "Projections", "Join Type", "Conditions")
    extra = {k: str(v)[:150] for k, v in node.get("extra_info", {}).items() if k in keys}
    if node.get("timing", 0) > 0.01 or "SCAN" in node["name"]:
        rows = node.get("intermediate_rows")
        print("  " * depth + node["name"], f"{node.get('timing', 0):.3f}s", "rows", rows, extra)
    for child in node.get("children", []):
        walk(child, depth + 1)


def main() -> None:
    path = Path(sys.argv[1])
    info = json.loads(path.with_suffix(".json").read_text())
    kw: dict[str, Any] = {}
    if len(sys.argv) > 2:
        from tsunagu.core.ports import HOT_PROPERTIES

        kw["hot"] = frozenset(HOT_PROPERTIES)
    sql = compile_segment(parse_rule(SEGMENT_5), today=info["today"], timezone=TIMEZONE, **kw)
    con = duckdb.connect(str(path), read_only=True, config={"threads": 2, "memory_limit": "512MB"})
    out = Path(tempfile.mkdtemp()) / "profile.json"
    con.execute("PRAGMA enable_profiling='json'")
    con.execute(f"PRAGMA profiling_output='{out}'")
    t = time.perf_counter()
    con.execute(f"SELECT count(*) FROM ({sql}) s").fetchall()
    print("wall", round(time.perf_counter() - t, 2))
    prof = json.loads(out.read_text())
    print("cpu", round(prof["query"]["cpu_time"], 2), "peak_buffer", prof["system"]["peak_buffer_memory"] >> 20, "MB")
    for op in prof["operator"]:
        walk(op)


if __name__ == "__main__":
    main()
