"""The morning overview's cost: `tsunagu.sql.overview.overview` on the demo workspace.

    python bench/overview.py [--size 2000] [--repeat 5]

Loads the demo retailer (`tsunagu demo --size N`: a year of web, app and store events of N
people, through the real pipeline) into a fresh data directory, opens its analytics
store (DuckDB) read-only and times the overview for 7, 30 and 90 days ending on the
demo's last day: the first call on a new connection (cold) and the median of `--repeat`
more (warm). Prints one JSON object on stdout (progress on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def log(message: str) -> None:
    print(f"[overview {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2000, help="demo people (default 2,000)")
    ap.add_argument("--repeat", type=int, default=5, help="warm runs per range (default 5)")
    ap.add_argument("--data", type=Path, default=None, help="reuse a data directory with the demo loaded")
    args = ap.parse_args()

    import duckdb

    from tsunagu.core.computed import RETAIL
    from tsunagu.core.engine import Engine
    from tsunagu.sql.overview import overview

    data = args.data or Path(tempfile.mkdtemp(prefix="tsunagu-bench-overview-")) / "data"
    if not (data / "credentials.json").exists():
        log(f"loading the demo retailer ({args.size:,} people) into {data} ...")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tsunagu", "demo", "--size", str(args.size), "--data-dir", str(data)],
                       check=True, capture_output=True, env=os.environ)  # fmt: skip
        log(f"loaded in {time.perf_counter() - t0:.0f} s")
    files = sorted(data.rglob("*.duckdb"))
    assert files, f"no analytics store under {data}"
    engine = Engine()  # the retail computed traits, parsed as a new workspace has them
    for d in RETAIL:
        engine.define("computed_trait", d["name"], {k: v for k, v in d.items() if k != "name"}, seq=1, now=0)
    computed = engine.live.computed

    con = duckdb.connect(str(files[0]), read_only=True)
    (events, people, last) = con.execute(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM people),"
        " (SELECT CAST(max(timestamp) AT TIME ZONE 'Asia/Tokyo' AS DATE) FROM events)"
    ).fetchone()  # type: ignore[misc]
    con.close()
    report: dict[str, Any] = {"events": events, "people": people, "today": last.isoformat(), "ranges": {}}
    for days in (7, 30, 90):
        con = duckdb.connect(str(files[0]), read_only=True)  # a new connection: cold caches

        def run(con: Any = con, days: int = days) -> tuple[float, Any]:
            t = time.perf_counter()
            out = overview(lambda sql, params: con.execute(sql, list(params)).fetchall(),
                           today=last, days=days, timezone="Asia/Tokyo", computed=computed)  # fmt: skip
            return (time.perf_counter() - t) * 1000, out

        cold, out = run()
        warm = [run()[0] for _ in range(args.repeat)]
        con.close()
        report["ranges"][str(days)] = {
            "cold_ms": round(cold, 1), "warm_ms_median": round(statistics.median(warm), 1),
            "warm_ms_max": round(max(warm), 1), "revenue": out.all_channels.revenue, "orders": out.all_channels.orders,
            "classes": len(out.classes),
        }  # fmt: skip
        log(f"{days} days: cold {cold:.0f} ms, warm {statistics.median(warm):.0f} ms")
    report["config"] = {"size": args.size, "repeat": args.repeat, "python": platform.python_version(),
                        "duckdb": duckdb.__version__, "cpus": os.cpu_count()}  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
