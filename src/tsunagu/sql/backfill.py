"""Back-fill: the history before a definition, counted by SQL over the analytics store.

A new counter or computed trait counts live from the log record that defined it; the
events before it (`seq < upto_seq`) are counted here and handed to the engine
(`Engine.apply_backfill`) in pages of persons. Rows are grouped by the person each event
arrived with (`events.person_id`, not the canonical one: persons merge while a back-fill
runs, and the engine resolves the id when it applies the row) and by the local calendar
day (days since 1970-01-01 in the workspace's zone):

* a counter gives `(person_id, day, count)`;
* a computed aggregate gives `(person_id, day, stats)`, `stats` being one day bucket of
  `tsunagu.core.userdata` (`stats_from_row` builds it), which `userdata.add_stats` folds in.

A back-fill's rows are grouped once, by one scan of the events, into a table of the
analytics file (`backfill_table`: named after the back-fill, so a restart finds it and
resumes after the cursor), and the pages are read from it by person; `drop_backfill`
removes it when the back-fill is done. (Grouping per page re-read every event for each
page: 137 s a page of 20,000 persons over 50M events.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
from sqlglot import exp

from ..core import userdata
from ..core.computed import Aggregate, parse_computed
from ..core.live import Backfill
from ._rows import (
    NUMERIC_TYPES,
    case,
    col,
    day_number,
    event_filter,
    field_filter,
    in_,
    lit,
    num,
    number_of,
    sessions,
    to_sql,
    value_rows,
)

__all__ = [
    "aggregate_query",
    "backfill_page",
    "backfill_persons",
    "backfill_table",
    "counter_query",
    "data_query",
    "drop_backfill",
    "prepare_backfill",
    "run_backfill",
    "stats_from_row",
]

_TABLE = "events"
_PERSON = "person_id"


def _persons_before(upto_seq: int, after: str, limit: int | None) -> exp.Select:
    """The page of persons: ids after `after`, in order, at most `limit`."""
    conditions: list[exp.Expression] = [exp.LT(this=col("seq"), expression=num(upto_seq))]
    if after:
        conditions.append(exp.GT(this=col(_PERSON), expression=lit(after)))
    query = (
        exp.select(col(_PERSON))
        .distinct()
        .from_(_TABLE, copy=False)
        .where(exp.and_(*conditions), copy=False)
        .order_by(col(_PERSON), copy=False)
    )
    return query.limit(limit, copy=False) if limit is not None else query


def _scope(upto_seq: int, after: str, limit: int | None) -> list[exp.Expression]:
    out: list[exp.Expression] = [exp.LT(this=col("seq"), expression=num(upto_seq))]
    if after:
        out.append(exp.GT(this=col(_PERSON), expression=lit(after)))
    if limit is not None:
        out.append(exp.In(this=col(_PERSON), query=_persons_before(upto_seq, after, limit).subquery()))
    return out


def _spec_filter(spec: Mapping[str, Any]) -> list[exp.Expression]:
    channel = spec.get("channel")
    where = spec.get("where") or {}
    channels = (channel,) if channel else ()
    return event_filter(spec["event"], channels, spec.get("store_id"), tuple(sorted(where.items())))


def counter_query(
    spec: Mapping[str, Any], *, upto_seq: int, timezone: str, after: str = "", limit: int | None = None
) -> exp.Select:
    """(person_id, day, count) of the track events matching a counter's spec
    (`{"event", "channel", "store_id", "where"}`, as `Backfill.spec` holds it)."""
    rows, _ = value_rows(_TABLE, _PERSON, [*_spec_filter(spec), *_scope(upto_seq, after, limit)], timezone,
                         prop=None, cross_lists=True)  # fmt: skip
    day = day_number(col("day"))
    return (
        exp.select(col("person_id"), exp.alias_(day, "day"), exp.alias_(exp.Count(this=exp.Star()), "n"))
        .from_(exp.alias_(rows.subquery(), "r", table=True), copy=False)
        .group_by(col("person_id"), day.copy(), copy=False)
        .order_by(col("person_id"), col("day"), copy=False)
    )


def _first(flag: str, column: str) -> exp.Expression:
    return exp.Max(this=case([(exp.EQ(this=col(flag), expression=num(1)), col(column))]))


def aggregate_query(
    trait: Aggregate, *, upto_seq: int, timezone: str, after: str = "", limit: int | None = None
) -> exp.Select:
    """(person_id, day, n, nums, sum_int, sum_double, doubles, min_int, min_double, max_int,
    max_double, first_ms, first_mid, first_type, first_text, last_ms, last_mid, last_type,
    last_text, strings JSON, trues, falses) per person and day: `stats_from_row` reads it."""
    event = None if trait.event == "*" else trait.event
    conditions = [*event_filter(event, trait.channels, trait.store_id, trait.where), *_scope(upto_seq, after, limit)]
    rows, ordinals = value_rows(_TABLE, _PERSON, conditions, timezone, prop=trait.prop, cross_lists=True)
    return _bucket_stats(rows, ordinals, "day", day_number(col("day", "st")))


def data_query(field: str, *, upto_seq: int, timezone: str, after: str = "", limit: int | None = None) -> exp.Select:
    """A user data field's buckets before `upto_seq`, as `core.userdata` keeps them:
    (person_id, day, sess, stats...) per person and day (`sess` null), and per person for
    their last two sessions (`day` null; sessions numbered from 0 by time, as
    `_rows.sessions` does), the stats columns as in `aggregate_query`."""
    event, _, path = field.partition(".")
    scoped = exp.select(exp.Star()).from_(_TABLE, copy=False).where(exp.and_(*_scope(upto_seq, after, limit)))
    numbered = exp.alias_(sessions(exp.alias_(scoped.subquery(), "upto", table=True), _PERSON).subquery(), "s",
                          table=True)  # fmt: skip
    conditions = field_filter(event, path)
    prop = path or None
    days_source: exp.Expression = numbered if event == "$sessions" else exp.alias_(scoped.subquery(), "e", table=True)
    day_rows, ordinals = value_rows(days_source, _PERSON, conditions, timezone, prop=prop, cross_lists=False)
    sess_rows, _ = value_rows(numbered.copy(), _PERSON, [c.copy() for c in conditions], timezone, prop=prop,
                              cross_lists=False, extra=("sess", "cur"))  # fmt: skip
    last_two = exp.GTE(this=col("sess"), expression=exp.Sub(this=col("cur"), expression=num(1)))
    sess_rows = sess_rows.where(last_two, copy=False)
    by_day = _bucket_stats(day_rows, ordinals, "day", day_number(col("day", "st")), other="sess")
    by_session = _bucket_stats(sess_rows, ordinals, "sess", col("sess", "st"), other="day", first=False)
    return exp.union(by_day, by_session, distinct=False)


def _bucket_stats(
    rows: exp.Select, ordinals: Sequence[str], bucket: str, bucket_out: exp.Expression, *,
    other: str | None = None, first: bool = True,
) -> exp.Select:  # fmt: skip
    """The stats columns of `aggregate_query` per person and `bucket` of value rows;
    `other`: a null column of that name beside the bucket (before it unless `first`)."""
    person, day = col("person_id"), col(bucket)

    def rank(desc: bool) -> exp.Expression:
        order = [exp.Ordered(this=col("ts"), desc=desc), exp.Ordered(this=col("mid"), desc=desc)]
        order += [exp.Ordered(this=col(o), desc=False) for o in ordinals]
        return exp.Window(this=exp.RowNumber(), partition_by=[person.copy(), day.copy()],
                          order=exp.Order(expressions=order))  # fmt: skip

    ranked = exp.select(exp.Star(), exp.alias_(rank(False), "rn_first"), exp.alias_(rank(True), "rn_last")).from_(
        exp.alias_(rows.subquery(), "r", table=True), copy=False
    )
    jtype, vtext = col("jtype"), col("vtext")
    number = number_of(jtype, vtext)
    is_int = in_(jtype.copy(), tuple(t for t in NUMERIC_TYPES if t != "DOUBLE"))
    is_double = exp.EQ(this=jtype.copy(), expression=lit("DOUBLE"))
    as_int = case([(is_int, exp.cast(vtext.copy(), "BIGINT"))])
    as_double = case([(is_double, number.copy())])

    def flag(value: str) -> exp.Expression:
        hit = exp.and_(exp.EQ(this=jtype.copy(), expression=lit("BOOLEAN")), exp.EQ(this=vtext.copy(),
                                                                                    expression=lit(value)))  # fmt: skip
        return exp.Sum(this=case([(hit, num(1))], num(0)))

    ms = exp.UnixMillis(this=col("ts"))
    stats = (
        exp.select(
            person, day,
            exp.alias_(exp.Count(this=exp.Star()), "n"),
            exp.alias_(exp.Count(this=number), "nums"),
            exp.alias_(exp.Sum(this=as_int), "sum_int"),
            exp.alias_(exp.Sum(this=as_double), "sum_double"),
            exp.alias_(exp.Count(this=as_double.copy()), "doubles"),
            exp.alias_(exp.Min(this=as_int.copy()), "min_int"),
            exp.alias_(exp.Min(this=as_double.copy()), "min_double"),
            exp.alias_(exp.Max(this=as_int.copy()), "max_int"),
            exp.alias_(exp.Max(this=as_double.copy()), "max_double"),
            exp.alias_(_first("rn_first", "ms"), "first_ms"),
            exp.alias_(_first("rn_first", "mid"), "first_mid"),
            exp.alias_(_first("rn_first", "jtype"), "first_type"),
            exp.alias_(_first("rn_first", "vtext"), "first_text"),
            exp.alias_(_first("rn_last", "ms"), "last_ms"),
            exp.alias_(_first("rn_last", "mid"), "last_mid"),
            exp.alias_(_first("rn_last", "jtype"), "last_type"),
            exp.alias_(_first("rn_last", "vtext"), "last_text"),
            exp.alias_(flag("true"), "trues"),
            exp.alias_(flag("false"), "falses"),
        )
        .from_(exp.alias_(ranked.select(exp.alias_(ms, "ms")).subquery(), "ranked", table=True), copy=False)
        .group_by(person.copy(), day.copy(), copy=False)
    )  # fmt: skip
    strings = (
        exp.select(person.copy(), day.copy(), vtext.copy(), exp.alias_(exp.Count(this=exp.Star()), "c"))
        .from_(exp.alias_(rows.subquery(), "r", table=True), copy=False)
        .where(exp.EQ(this=jtype.copy(), expression=lit("VARCHAR")), copy=False)
        .group_by(person.copy(), day.copy(), vtext.copy(), copy=False)
    )
    counts = exp.JSONObjectAgg(this=vtext.copy(), expression=col("c"))
    values = (
        exp.select(person.copy(), day.copy(), exp.alias_(counts, "strings"))
        .from_(exp.alias_(strings.subquery(), "s", table=True), copy=False)
        .group_by(person.copy(), day.copy(), copy=False)
    )
    same = exp.and_(
        exp.EQ(this=col("person_id", "st"), expression=col("person_id", "va")),
        exp.EQ(this=col(bucket, "st"), expression=col(bucket, "va")),
    )
    columns = [exp.column(c, table="st") for c in (
        "n", "nums", "sum_int", "sum_double", "doubles", "min_int", "min_double", "max_int", "max_double",
        "first_ms", "first_mid", "first_type", "first_text", "last_ms", "last_mid", "last_type", "last_text",
    )]  # fmt: skip
    keys: list[exp.Expression] = [exp.alias_(bucket_out, bucket)]
    if other is not None:
        null = exp.alias_(exp.cast(exp.Null(), "BIGINT"), other)
        keys = [*keys, null] if first else [null, *keys]
    query = (
        exp.select(
            col("person_id", "st"),
            *keys,
            *columns,
            exp.alias_(exp.cast(col("strings", "va"), "VARCHAR"), "strings"),
            col("trues", "st"),
            col("falses", "st"),
        )
        .from_(exp.alias_(stats.subquery(), "st", table=True), copy=False)
        .join(exp.alias_(values.subquery(), "va", table=True), on=same, join_type="left", copy=False)
    )
    return query if other is not None else query.order_by(col("person_id", "st"), col(bucket), copy=False)


def _typed(jtype: str | None, text: str | None) -> Any:
    """A JSON scalar back from its DuckDB type and text."""
    if text is None:
        return None
    if jtype == "VARCHAR":
        return text
    if jtype == "BOOLEAN":
        return text == "true"
    if jtype == "DOUBLE":
        return float(text)
    return int(text)


def _pick(a: Any, b: Any, smaller: bool) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return (min if smaller else max)(a, b)


def stats_from_row(row: Sequence[Any]) -> userdata.Stats:
    """One `aggregate_query` row (after person_id and day) as a `core.userdata` bucket."""
    (n, nums, sum_int, sum_double, doubles, min_int, min_double, max_int, max_double, first_ms, first_mid,
     first_type, first_text, last_ms, last_mid, last_type, last_text, strings, trues, falses) = row  # fmt: skip
    total: Any = int(sum_int or 0)
    if doubles:
        total = total + float(sum_double)
    values = json.loads(strings) if strings else None
    return [
        int(n), int(nums), userdata.fit_sum(total),
        _pick(None if min_int is None else int(min_int), min_double, True),
        _pick(None if max_int is None else int(max_int), max_double, False),
        int(first_ms), first_mid, _typed(first_type, first_text),
        int(last_ms), last_mid, _typed(last_type, last_text),
        values, int(trues), int(falses),
    ]  # fmt: skip


def _trait(spec: Mapping[str, Any] | Aggregate, key: str) -> Aggregate:
    if isinstance(spec, Aggregate):
        return spec
    trait = parse_computed({**spec, "name": key})
    if not isinstance(trait, Aggregate):
        raise ValueError(f"computed trait {key!r} is not an aggregate: it needs no back-fill")
    return trait


def run_backfill(
    con: duckdb.DuckDBPyConnection, kind: str, key: str, spec: Mapping[str, Any] | Aggregate, *, upto_seq: int,
    timezone: str, after: str = "", limit: int | None = None,
) -> list[tuple[str, Any, Any]]:  # fmt: skip
    """Rows for `Engine.apply_backfill`: counters (person, day, n), computed (person, day,
    stats), user data (person, day, stats) and (person, [session], stats)."""
    if kind == "counter":
        assert not isinstance(spec, Aggregate)
        query = counter_query(spec, upto_seq=upto_seq, timezone=timezone, after=after, limit=limit)
        return [(pid, int(day), int(n)) for pid, day, n in con.execute(to_sql(query)).fetchall()]
    if kind == "data":
        query = data_query(key, upto_seq=upto_seq, timezone=timezone, after=after, limit=limit)
        return _data_rows(con.execute(to_sql(query) + " ORDER BY person_id, day, sess").fetchall())
    if kind != "computed":
        raise ValueError(f"unknown back-fill kind {kind!r}: counter, computed or data")
    query = aggregate_query(_trait(spec, key), upto_seq=upto_seq, timezone=timezone, after=after, limit=limit)
    return [(r[0], int(r[1]), stats_from_row(r[2:])) for r in con.execute(to_sql(query)).fetchall()]


def _data_rows(found: Sequence[Sequence[Any]]) -> list[tuple[str, Any, Any]]:
    """`data_query` rows for the engine: (person, day, stats), or (person, [session], stats)."""
    return [(r[0], int(r[1]) if r[1] is not None else [int(r[2])], stats_from_row(r[3:])) for r in found]


def backfill_persons(con: duckdb.DuckDBPyConnection, upto_seq: int) -> list[str]:
    """Every person id (as the events hold them) with an event before `upto_seq`, sorted."""
    query = _persons_before(upto_seq, "", None)
    return [r[0] for r in con.execute(to_sql(query)).fetchall()]


def _query(backfill: Backfill, timezone: str) -> exp.Select:
    if backfill.kind == "counter":
        return counter_query(backfill.spec, upto_seq=backfill.upto_seq, timezone=timezone)
    if backfill.kind == "data":
        return data_query(backfill.key, upto_seq=backfill.upto_seq, timezone=timezone)
    if backfill.kind != "computed":
        raise ValueError(f"unknown back-fill kind {backfill.kind!r}: counter, computed or data")
    return aggregate_query(_trait(backfill.spec, backfill.key), upto_seq=backfill.upto_seq, timezone=timezone)


def _prefix(backfill: Backfill) -> str:
    what = json.dumps([backfill.kind, backfill.key, backfill.upto_seq, backfill.spec], sort_keys=True, default=str)
    return f"backfill_{hashlib.sha1(what.encode()).hexdigest()[:16]}_"


def backfill_table(backfill: Backfill, timezone: str) -> str:
    """The table holding a back-fill's rows: named after what it counts and the zone of its days."""
    return _prefix(backfill) + hashlib.sha1(timezone.encode()).hexdigest()[:8]


def _tables(con: duckdb.DuckDBPyConnection, prefix: str) -> list[str]:
    rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE starts_with(table_name, ?)", [prefix]).fetchall()
    return [r[0] for r in rows]


def prepare_backfill(con: duckdb.DuckDBPyConnection, backfill: Backfill, *, timezone: str) -> str:
    """The back-fill's table, grouped now (one scan of the events) unless it exists already.

    It is a table of the analytics file, so that it outlives a restart; on a read-only
    connection (a copy of the store opened for reading) a temporary one.
    """
    name = backfill_table(backfill, timezone)
    if name in _tables(con, name):
        return name
    sql = to_sql(_query(backfill, timezone))
    try:
        con.execute(f"CREATE TABLE {name} AS {sql}")
    except duckdb.InvalidInputException as exc:  # "Cannot execute statement of type CREATE on database ..."
        if "read-only" not in str(exc):
            raise
        con.execute(f"CREATE TEMPORARY TABLE {name} AS {sql}")
    return name


def drop_backfill(con: duckdb.DuckDBPyConnection, backfill: Backfill) -> None:
    """Drop the back-fill's tables (whatever zone they were grouped in)."""
    for name in _tables(con, _prefix(backfill)):
        con.execute(f"DROP TABLE IF EXISTS {name}")


def backfill_page(
    con: duckdb.DuckDBPyConnection, backfill: Backfill, *, timezone: str, limit: int = 10_000
) -> tuple[list[tuple[str, Any, Any]], str, bool]:
    """The next page of a back-fill after its cursor: (rows, new cursor, done).

    A page is the rows of the next `limit` persons (those with rows) in id order."""
    name = prepare_backfill(con, backfill, timezone=timezone)
    last = con.execute(
        f"SELECT max(person_id), count(*) FROM (SELECT DISTINCT person_id FROM {name} WHERE person_id > ?"
        " ORDER BY person_id LIMIT ?)",
        [backfill.cursor, limit],
    ).fetchone()
    if last is None or not last[1]:
        return [], backfill.cursor, True
    found = con.execute(
        f"SELECT * FROM {name} WHERE person_id > ? AND person_id <= ? ORDER BY person_id, day"
        + (", sess" if backfill.kind == "data" else ""),
        [backfill.cursor, last[0]],
    ).fetchall()
    if backfill.kind == "data":
        rows: list[tuple[str, Any, Any]] = _data_rows(found)
    elif backfill.kind == "counter":
        rows = [(pid, int(day), int(n)) for pid, day, n in found]
    else:
        rows = [(r[0], int(r[1]), stats_from_row(r[2:])) for r in found]
    return rows, last[0], int(last[1]) < limit
