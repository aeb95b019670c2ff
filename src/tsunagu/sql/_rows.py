"""Event rows for the SQL compilers: which events, on which local day, carrying which values.

Shared by the segment compiler (`segments.py`, over `person_events` and the canonical
person) and the back-fill (`backfill.py`, over `events` and the person an event arrived
with). Every builder returns sqlglot expressions; nothing is pasted as text.

A value row has the columns the statistics read: `person_id`, `day` (the local DATE),
`ts`, `mid` (the order of first and last), `o1`..`oN` (the position of a value inside its
event, when a property path crosses lists), `jtype` (DuckDB's `json_type`: VARCHAR,
BIGINT, UBIGINT, DOUBLE, BOOLEAN, NULL) and `vtext` (the value as text, NULL for null).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlglot import exp

from ..core import userdata
from ..core.ports import HOT_PROPERTIES
from ..core.segments import VIEWS

TRACKED = ("track", "page", "screen")  # the event types user data and sessions count
NUMERIC_TYPES = ("BIGINT", "UBIGINT", "DOUBLE", "HUGEINT")
SCALAR_TYPES = ("VARCHAR", "BOOLEAN", *NUMERIC_TYPES)
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table)


def lit(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def num(value: float) -> exp.Literal:
    return exp.Literal.number(value)


def json_path(parts: Sequence[str]) -> exp.Expression:
    """`$.a.b` as a path each dialect prints its own way (a key that needs it is quoted).

    Print it with `to_sql`: DuckDB needs a backslash in a key escaped too."""
    return exp.JSONPath(expressions=[exp.JSONPathRoot(), *(exp.JSONPathKey(this=p) for p in parts)])


def _duckdb_path_key(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.JSONPathKey) and isinstance(node.this, str) and "\\" in node.this:
        return exp.JSONPathKey(this=node.this.replace("\\", "\\\\"))
    return node


def to_sql(query: exp.Expression, dialect: str = "duckdb", *, pretty: bool = False, identify: bool = False) -> str:
    r"""The query's text in `dialect`: the one way the compilers print SQL.

    DuckDB reads `\\` and `\"` in a quoted path key as escapes, and sqlglot escapes only the
    quote: a key ending in a backslash (`$."\"`) broke the query, and a key holding `\\`
    named another key. So a key's backslashes are doubled for DuckDB first. `identify`
    quotes every identifier (the timeline, search and report queries do).
    """
    if dialect == "duckdb" and any("\\" in k.name for k in query.find_all(exp.JSONPathKey)):
        query = query.transform(_duckdb_path_key)
    return query.sql(dialect=dialect, pretty=pretty, identify=identify)


def json_value(column: exp.Expression, parts: Sequence[str]) -> exp.Expression:
    return exp.JSONExtract(this=column, expression=json_path(parts))


def json_text(column: exp.Expression, parts: Sequence[str]) -> exp.Expression:
    return exp.JSONExtractScalar(this=column, expression=json_path(parts))


def json_type(value: exp.Expression) -> exp.Expression:
    return exp.JSONType(this=value)


def try_number(e: exp.Expression) -> exp.Expression:
    return exp.TryCast(this=e, to=exp.DataType.build("DOUBLE"))


def in_(e: exp.Expression, values: Sequence[str]) -> exp.Expression:
    return exp.In(this=e, expressions=[lit(v) for v in values])


def case(ifs: Sequence[tuple[exp.Expression, exp.Expression]], default: exp.Expression | None = None) -> exp.Case:
    return exp.Case(ifs=[exp.If(this=c, true=t) for c, t in ifs], default=default)


def local_day(timezone: str, column: str = "timestamp") -> exp.Expression:
    """The calendar day of an instant in the workspace's zone, as a DATE."""
    return exp.cast(exp.AtTimeZone(this=col(column), zone=lit(timezone)), "DATE")


@lru_cache(maxsize=4096)
def day_start(day: int, timezone: str) -> tuple[datetime, bool]:
    """The instant local day `day` starts in `timezone` (UTC), and whether that is exact.

    Exact when the day's midnight happens once: then an instant is on or after the day
    exactly when it is on or after this one (local days only move forward). Where a
    transition skips or repeats midnight (America/Santiago falls back from 00:00 to
    23:00) it is only a lower bound, and the local date must be checked as well.
    """
    midnight = datetime.combine(date(1970, 1, 1) + timedelta(days=day), datetime.min.time())
    before = midnight.replace(tzinfo=ZoneInfo(timezone), fold=0)
    after = midnight.replace(tzinfo=ZoneInfo(timezone), fold=1)
    exact = before.utcoffset() == after.utcoffset()
    return min(before.astimezone(UTC), after.astimezone(UTC)), exact


def instant(at: datetime) -> exp.Expression:
    return exp.cast(lit(at.isoformat(sep=" ")), "TIMESTAMPTZ")


def days_between(
    first: int | None, last: int | None, timezone: str, ts: str = "timestamp", day: exp.Expression | None = None
) -> list[exp.Expression]:
    """Events from local day `first` to `last` (None: no bound), as conditions on the raw
    timestamp column `ts`, which DuckDB prunes by row-group zone maps (events are stored in
    time order); converting every row to a local date reads and converts them all. The
    local date (`day`, default `ts` converted) is compared too only where a bound is inexact."""
    out: list[exp.Expression] = []
    local = day if day is not None else local_day(timezone, ts)
    if first is not None:
        start, exact = day_start(first, timezone)
        out.append(exp.GTE(this=col(ts), expression=instant(start)))
        if not exact:
            out.append(exp.GTE(this=local.copy(), expression=date_of(first)))
    if last is not None:
        end, exact = day_start(last + 1, timezone)
        if exact:
            out.append(exp.LT(this=col(ts), expression=instant(end)))
        else:  # the day after may start (again) before this instant: bound loosely, then exactly
            out.append(exp.LT(this=col(ts), expression=instant(end + timedelta(days=1))))
            out.append(exp.LTE(this=local.copy(), expression=date_of(last)))
    return out


def date_of(day: int) -> exp.Expression:
    return exp.cast(lit((date(1970, 1, 1) + timedelta(days=day)).isoformat()), "DATE")


def day_number(day: exp.Expression) -> exp.Expression:
    """Days since 1970-01-01 of a DATE (the engine's day numbers)."""
    return exp.DateDiff(this=day, expression=date_of(0), unit=exp.var("DAY"))


def number_text(e: exp.Expression) -> exp.Expression:
    """A DOUBLE as the streaming evaluator prints it: 3.0 as "3", 2.5 as "2.5"."""
    whole = exp.and_(
        exp.EQ(this=e, expression=exp.Floor(this=e.copy())),
        exp.LT(this=exp.Abs(this=e.copy()), expression=num(1e15)),
    )
    as_int = exp.cast(exp.cast(e.copy(), "BIGINT"), "VARCHAR")
    return case([(whole, as_int)], exp.cast(e.copy(), "VARCHAR"))


def canonical_text(jtype: exp.Expression, vtext: exp.Expression) -> exp.Expression:
    """A JSON scalar's text as the streaming evaluator compares it (numbers normalised)."""
    return case([(exp.EQ(this=jtype, expression=lit("DOUBLE")), number_text(try_number(vtext)))], vtext.copy())


def hot_number(key: str, hot: Collection[str]) -> exp.Expression | None:
    """The hot column that says what `number_of` says of top-level property `key`, if any."""
    return col(key) if key in hot and HOT_PROPERTIES.get(key) == "DOUBLE" else None


def _hot_where(key: str, value: Any, hot: Collection[str]) -> exp.Expression | None:
    """`where_property` on a hot column, where the column says exactly the same: a text for a
    VARCHAR column (a JSON string equals it, nothing else does), a number but 0 and 1 (they
    equal false and true too) for a DOUBLE one. NULL where the JSON path gives false: both
    keep the same rows, in a WHERE and in a CASE."""
    kind = HOT_PROPERTIES.get(key) if key in hot else None
    if kind == "VARCHAR" and isinstance(value, str):
        return exp.EQ(this=col(key), expression=lit(value))
    if kind == "DOUBLE" and isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if number not in (0.0, 1.0):
            return exp.EQ(this=col(key), expression=num(number))
    return None


def where_property(key: str, value: Any, column: str = "properties", hot: Collection[str] = ()) -> exp.Expression:
    """`properties[key] == value` with Python's equality: 1 == 1.0 == True, "1" != 1.

    `hot`: the `core.ports.HOT_PROPERTIES` the events table has columns of (`properties` only)."""
    if column == "properties" and (on_column := _hot_where(key, value, hot)) is not None:
        return on_column
    value_json = json_value(col(column), [key])
    jtype = json_type(value_json)
    text = json_text(col(column), [key])
    is_number = in_(jtype.copy(), NUMERIC_TYPES)
    if isinstance(value, str):
        return exp.and_(exp.EQ(this=jtype, expression=lit("VARCHAR")), exp.EQ(this=text, expression=lit(value)))
    number = float(value)
    options = [exp.and_(is_number, exp.EQ(this=try_number(text), expression=num(number)))]
    if number in (0.0, 1.0):
        options.append(
            exp.and_(
                exp.EQ(this=jtype.copy(), expression=lit("BOOLEAN")),
                exp.EQ(this=text.copy(), expression=lit("true" if number else "false")),
            )
        )
    return exp.paren(exp.or_(*options))


def event_filter(
    event: str | None, channels: Sequence[str] = (), store_id: str | None = None,
    where: Sequence[tuple[str, Any]] = (), hot: Collection[str] = (),
) -> list[exp.Expression]:  # fmt: skip
    """Track events named `event` (None: any; `$page`, `$screen`: page and screen views, whatever
    their page's name) with the filters of a counter or aggregate (`hot`: `where_property`'s)."""
    view = VIEWS.get(event) if event is not None else None
    out: list[exp.Expression] = [exp.EQ(this=col("type"), expression=lit(view or "track"))]
    if event is not None and view is None:
        out.append(exp.EQ(this=col("event"), expression=lit(event)))
    if len(channels) == 1:
        out.append(exp.EQ(this=col("channel"), expression=lit(channels[0])))
    elif channels:
        out.append(in_(col("channel"), channels))
    if store_id is not None:
        out.append(exp.EQ(this=col("store_id"), expression=lit(store_id)))
    out += [where_property(k, v, hot=hot) for k, v in where]
    return out


def field_filter(event: str, path: str) -> list[exp.Expression]:
    """The events a user data field (`event.path`) summarises: `$sessions` counts session
    starts (it has no properties), `$page`/`$screen` page and screen views, other `$`
    names nothing, the rest track events of that name."""
    if event == "$sessions":
        out: list[exp.Expression] = [exp.EQ(this=col("sess_start"), expression=num(1))]
        if path:
            out.append(exp.false())
        return out
    if event in ("$page", "$screen"):
        return [exp.EQ(this=col("type"), expression=lit(event[1:]))]
    if event.startswith("$"):
        return [exp.false()]
    return event_filter(event)


def _ordered(*columns: tuple[str, bool]) -> exp.Order:
    return exp.Order(expressions=[exp.Ordered(this=col(c), desc=d) for c, d in columns])


def sessions(table: str | exp.Expression, person: str) -> exp.Select:
    """Track, page and screen events numbered by session, the person's latest with them.

    A session starts when an event comes more than 30 minutes after the one before it
    (by time); `sess` is its number from 0, `cur` the person's latest, `sess_start` 1 on
    an event that starts one. The streaming side numbers by arrival, which is the same
    when events arrive in time order.
    """
    order = _ordered(("timestamp", False), ("message_id", False))
    window = exp.Window(this=exp.Lag(this=col("timestamp")), partition_by=[col(person)], order=order)
    gap = exp.Interval(this=lit(str(userdata.SESSION_GAP_MS // 60_000)), unit=exp.var("MINUTE"))
    starts = exp.or_(
        exp.Is(this=window, expression=exp.Null()),
        exp.GT(this=col("timestamp"), expression=exp.Add(this=window.copy(), expression=gap)),
    )
    marked = (
        exp.select(exp.Star(), exp.alias_(case([(starts, num(1))], num(0)), "sess_start"))
        .from_(table, copy=False)
        .where(in_(col("type"), TRACKED), copy=False)
    )
    running = exp.Window(
        this=exp.Sum(this=col("sess_start")),
        partition_by=[col(person)],
        order=order.copy(),
        spec=exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING", end="CURRENT ROW"),
    )
    total = exp.Window(this=exp.Sum(this=col("sess_start")), partition_by=[col(person)])
    return exp.select(
        exp.Star(),
        exp.alias_(exp.Sub(this=running, expression=num(1)), "sess"),
        exp.alias_(exp.Sub(this=total, expression=num(1)), "cur"),
    ).from_(exp.alias_(marked.subquery(), "marked", table=True), copy=False)


def _elements(node: exp.Expression, key: str) -> exp.Expression:
    """The values one step of a path names in a JSON node: a list's items, one value, or none."""
    value = json_value(node, [key])
    jtype = json_type(value.copy())
    items = exp.cast(value.copy(), exp.DataType.build("JSON[]", dialect="duckdb"))
    is_null = exp.EQ(this=jtype.copy(), expression=lit("NULL"))
    missing = exp.or_(exp.Is(this=value.copy(), expression=exp.Null()), is_null)
    return case(
        [(exp.EQ(this=jtype, expression=lit("ARRAY")), items), (missing, exp.Array(expressions=[]))],
        exp.Array(expressions=[value.copy()]),
    )


def value_rows(
    source: str, person: str, conditions: Sequence[exp.Expression], timezone: str, *,
    prop: str | None, cross_lists: bool, extra: Sequence[str] = (),
) -> tuple[exp.Select, list[str]]:  # fmt: skip
    """One row per value: (person_id, day, ts, mid, o1.., jtype, vtext, *extra), and the
    ordinal columns. `prop` None: one row per event with a null value. `cross_lists`: the
    computed-trait path (`items.category`: each item's; `$channel`, `$store_id`: the
    columns); otherwise the user-data field (nested objects, lists skipped)."""
    base = [
        exp.alias_(col(person), "person_id"),
        exp.alias_(local_day(timezone), "day"),
        exp.alias_(col("timestamp"), "ts"),
        exp.alias_(col("message_id"), "mid"),
        *(col(c) for c in extra),
    ]
    where = list(conditions)
    ordinals: list[str] = []
    if prop is None:
        values = [exp.alias_(exp.Null(), "jtype"), exp.alias_(exp.cast(exp.Null(), "VARCHAR"), "vtext")]
        query = exp.select(*base, *values).from_(source, copy=False)
    elif cross_lists and prop in ("$channel", "$store_id"):
        column = prop[1:]
        values = [exp.alias_(lit("VARCHAR"), "jtype"), exp.alias_(col(column), "vtext")]
        where.append(exp.not_(exp.Is(this=col(column), expression=exp.Null())))
        query = exp.select(*base, *values).from_(source, copy=False)
    elif cross_lists:
        query = exp.select(*base).from_(source, copy=False)
        node: exp.Expression = col("properties")
        for i, key in enumerate(prop.split("."), 1):
            alias = exp.TableAlias(this=exp.to_identifier(f"u{i}"), columns=[exp.to_identifier(f"n{i}")])
            unnest = exp.Unnest(expressions=[_elements(node, key)], alias=alias, offset=exp.to_identifier(f"o{i}"))
            query = query.join(unnest, join_type="cross", copy=False)
            node = col(f"n{i}")
            ordinals.append(f"o{i}")
        jtype = json_type(node)
        where.append(exp.not_(in_(jtype.copy(), ("OBJECT", "ARRAY"))))
        text = exp.JSONExtractScalar(this=node.copy(), expression=json_path([]))
        query = query.select(
            *(col(o) for o in ordinals), exp.alias_(jtype, "jtype"), exp.alias_(text, "vtext"), copy=False
        )
    else:
        parts = prop.split(".")
        if len(parts) > userdata.MAX_DEPTH:  # never summarised: deeper objects are skipped
            where.append(exp.false())
        jtype = json_type(json_value(col("properties"), parts))
        where.append(in_(jtype.copy(), SCALAR_TYPES))
        values = [exp.alias_(jtype, "jtype"), exp.alias_(json_text(col("properties"), parts), "vtext")]
        query = exp.select(*base, *values).from_(source, copy=False)
    if where:
        query = query.where(exp.and_(*where), copy=False)
    return query, ordinals


def number_of(jtype: exp.Expression, vtext: exp.Expression) -> exp.Expression:
    """The value as a DOUBLE when it is a JSON number (booleans and strings are not)."""
    return case([(in_(jtype, NUMERIC_TYPES), try_number(vtext))])
