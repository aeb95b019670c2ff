"""Back-fill jobs: count the history before a definition into its new counters and traits.

The pipeline pages through the persons the events hold (`events.person_id`, the id each
event got when it arrived: stable, so pages never overlap however persons merge
meanwhile) and asks the analytics store for one page's day buckets at a time
(`tsunagu.sql.backfill`); each page becomes a log record that the engine folds in
(`Engine.apply_backfill`). A restart resumes after the last page in the log, so nothing
is lost or counted twice.
"""

from __future__ import annotations

from typing import Any

from .core.live import Backfill
from .sql import backfill as backfill_sql
from .storage.duckdb_analytics import DuckDBAnalytics

__all__ = ["chunk", "person_count"]


def person_count(analytics: DuckDBAnalytics, bf: Backfill) -> int:
    """How many persons' events the back-fill reads (for its progress bar)."""
    row = analytics.query("SELECT count(DISTINCT person_id) FROM events WHERE seq < ?", [bf.upto_seq])
    return int(row[0][0]) if row else 0


def chunk(analytics: DuckDBAnalytics, bf: Backfill, timezone: str, limit: int) -> tuple[list[Any], str, bool]:
    """The next page of rows after `bf.cursor`: (rows, the new cursor, whether this is the last)."""
    with analytics.reader() as con:
        return backfill_sql.backfill_page(con, bf, timezone=timezone, limit=limit)
