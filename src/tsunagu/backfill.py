"""Back-fill jobs: count the history before a definition into its new counters and traits.

The pipeline pages through the persons the events hold (`events.person_id`, the id each
event got when it arrived: stable, so pages never overlap however persons merge
meanwhile) and hands each page's day buckets to the engine as a log record
(`Engine.apply_backfill`). The buckets are grouped once, by one scan of the events, into
a table of the analytics store (`tsunagu.sql.backfill.prepare_backfill`); pages are read
from it. A restart finds the table and resumes after the last page in the log, so
nothing is lost or counted twice; `finish` drops the table when the back-fill is done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .core.live import Backfill
from .sql import backfill as backfill_sql

if TYPE_CHECKING:
    from .storage.duckdb_analytics import DuckDBAnalytics

__all__ = ["chunk", "finish", "person_count"]


def person_count(analytics: DuckDBAnalytics, bf: Backfill, timezone: str) -> int:
    """How many persons the back-fill's pages hold (its progress bar's total): groups the
    back-fill's rows, as its first page would, and counts their persons."""
    with analytics.reader() as con:
        table = backfill_sql.prepare_backfill(con, bf, timezone=timezone)
        row = con.execute(f"SELECT count(DISTINCT person_id) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def chunk(analytics: DuckDBAnalytics, bf: Backfill, timezone: str, limit: int) -> tuple[list[Any], str, bool]:
    """The next page of rows after `bf.cursor`: (rows, the new cursor, whether this is the last)."""
    with analytics.reader() as con:
        return backfill_sql.backfill_page(con, bf, timezone=timezone, limit=limit)


def finish(analytics: DuckDBAnalytics, bf: Backfill) -> None:
    """Drop the back-fill's grouped rows (after its last page is in the log)."""
    with analytics.reader() as con:
        backfill_sql.drop_backfill(con, bf)
