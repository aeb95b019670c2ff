"""A person's timeline, their events for on-read user data, and the live feed, as queries.

Built with sqlglot's expression builder like the segment SQL (`segments.py`): every
value a caller passes (person ids, filters, the cursor, the limit) is a bound parameter
(`?`), never text in the query, and identifiers are quoted by sqlglot. Each builder
returns `(sql, params)` in the analytics store's dialect (DuckDB), over its `events`
table (the rows as they arrived, with the person id they arrived with).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlglot import exp

from ._rows import TRACKED, col, in_, to_sql

__all__ = ["TIMELINE_COLUMNS", "live_feed_query", "timeline_query", "user_data_query"]

#: what a timeline row holds (times as epoch milliseconds; JSON columns as text)
TIMELINE_COLUMNS = (
    "message_id", "type", "event", "channel", "store_id", "timestamp", "received_at", "person_id", "user_id",
    "anonymous_id", "properties", "context", "traits",
)  # fmt: skip
_MS_COLUMNS = frozenset({"timestamp", "received_at"})
#: what the timeline holds besides what people did, left out of the live feed
_BOOKKEEPING = ("merge", "identity_conflict")


def param() -> exp.Placeholder:
    """A positional parameter (`?`): where a caller's value goes."""
    return exp.Placeholder()


def epoch_ms(column: str) -> exp.Expression:
    """An instant as epoch milliseconds (the engine's and the API's unit)."""
    return exp.Anonymous(this="epoch_ms", expressions=[col(column)])


def contains(column: str) -> exp.Expression:
    """`column` is one of the values of a list parameter."""
    return exp.ArrayContains(this=param(), expression=col(column))


def render(query: exp.Expression) -> str:
    """DuckDB text with every identifier quoted (a column named like a keyword stays a column)."""
    return to_sql(query, "duckdb", identify=True)


def timeline_query(
    person_ids: Sequence[str],
    *,
    limit: int,
    cursor: tuple[int, str] | None = None,
    events: Iterable[str] = (),
    channels: Iterable[str] = (),
    types: Iterable[str] = (),
) -> tuple[str, list[Any]]:
    """A person's events (all the ids they go by), newest first, one page of `limit` and one
    more row (to tell whether another page follows).

    `cursor` is the (timestamp ms, message id) of the last row of the page before; the
    filters keep the rows whose event name, channel and type are among those given (an
    empty filter keeps all)."""
    # One arm a person id: the events are sorted by person in runs (`storage/event_runs.py`),
    # and `person_id = ?` lets each run's zone maps skip all but that person's row groups
    # (a list of ids far apart in the key space would span them all).
    arms = [exp.select(exp.Star()).from_("events").where(exp.EQ(this=col("person_id"), expression=param()))
            for _ in dict.fromkeys(person_ids)]  # fmt: skip
    source: exp.Expression = arms[0] if arms else exp.select(exp.Star()).from_("events").where(exp.false())
    for arm in arms[1:]:
        source = exp.union(source, arm, distinct=False)
    where: list[exp.Expression] = [exp.true()]
    params: list[Any] = list(dict.fromkeys(person_ids))
    for column, values in (("event", events), ("channel", channels), ("type", types)):
        values = list(values)
        if values:
            where.append(contains(column))
            params.append(values)
    if cursor is not None:
        older = exp.LT(this=epoch_ms("timestamp"), expression=param())
        tie = exp.and_(
            exp.EQ(this=epoch_ms("timestamp"), expression=param()),
            exp.LT(this=col("message_id"), expression=param()),
        )
        where.append(exp.paren(exp.or_(older, tie)))
        params += [cursor[0], cursor[0], cursor[1]]
    columns = [exp.alias_(epoch_ms(c), c) if c in _MS_COLUMNS else col(c) for c in TIMELINE_COLUMNS]
    query = (
        exp.select(*columns)
        .from_(exp.Subquery(this=source, alias=exp.TableAlias(this=exp.to_identifier("e"))))
        .where(exp.and_(*where))
        # `timestamp` is the milliseconds alias: the order the cursor pages through
        .order_by(exp.Ordered(this=col("timestamp"), desc=True), exp.Ordered(this=col("message_id"), desc=True))
        .limit(param())
    )
    params.append(limit + 1)
    return render(query), params


def user_data_query(person_ids: Sequence[str]) -> tuple[str, list[Any]]:
    """(type, event, timestamp ms, message id, properties) of every event user data counts,
    in arrival order (the order the engine folded them in)."""
    query = (
        exp.select(col("type"), col("event"), epoch_ms("timestamp"), col("message_id"), col("properties"))
        .from_("event_rows")
        .where(exp.and_(contains("person_id"), in_(col("type"), TRACKED)))
        .order_by(col("seq"), col("pos"))
    )
    return render(query), [list(person_ids)]


def live_feed_query(limit: int) -> tuple[str, list[Any]]:
    """The workspace's latest `limit` events as they arrived (the UI's live page)."""
    columns = [
        exp.alias_(epoch_ms("received_at"), "received_at"),
        exp.alias_(epoch_ms("timestamp"), "ts"),
        *(col(c) for c in ("type", "event", "channel", "store_id", "person_id", "user_id", "anonymous_id")),
        col("properties"),
        col("traits"),
    ]
    query = (
        exp.select(*columns)
        .from_("events")
        .where(exp.not_(in_(col("type"), _BOOKKEEPING)))
        .order_by(exp.Ordered(this=col("received_at"), desc=True), exp.Ordered(this=col("seq"), desc=True))
        .limit(param())
    )
    return render(query), [limit]
