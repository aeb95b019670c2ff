"""Segment rules compiled to SQL (bulk evaluation: counts, previews, exports).

Built with sqlglot's expression builder, never by pasting strings, so the same rule runs
on DuckDB (the embedded analytics store) and prints for PostgreSQL, BigQuery, Snowflake
or ClickHouse. The meaning is the streaming evaluator's (`tsunagu.core.segments`):
event windows are calendar days in the workspace's zone, today included, and no window
reaches past today.

Tables read: `people(person_id, traits JSON)` and `person_events` (events with their
current `canonical_person_id`), as the analytics store defines them.

Event counters (`did`, `first_did`) and the plain statistics of user data (count, sum,
min, max, average, true and false counts over a calendar window) are columns of one
grouped scan of `person_events` (conditional aggregates, one per condition), so a rule
reads the events once however many conditions it has; the other conditions that read
history are one per-person query each (a CTE; identical ones are shared). Both are LEFT
JOINed to `people`. Windows are bounds on the raw timestamp (the instants the local
days start, computed from the zone), which DuckDB prunes by zone maps. A value is compared as the streaming side does:
as text for eq, neq, in and contains (3.0 prints as "3", true as "true"), as a number for
gt, gte, lt and lte, and a missing value makes every comparison false but neq and
not_exists (two-valued, so that `not` keeps its meaning).

User data fields (`DataIs`) read the JSON properties at the field's path (nested
objects, lists skipped); computed traits' paths may cross lists (`items.category`),
unnested with their positions so that "first" and "last" break ties the streaming way.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import sqlglot
from sqlglot import exp

from ..core import userdata
from ..core.computed import Aggregate, Cases, ComputedTrait
from ..core.segments import (
    All,
    Any_,
    ComputedIs,
    DataIs,
    Did,
    FirstDid,
    InSegment,
    Not,
    Rule,
    TraitIs,
    did_first_day,
)
from ._rows import (
    SCALAR_TYPES,
    canonical_text,
    case,
    col,
    date_of,
    day_start,
    days_between,
    event_filter,
    field_filter,
    hot_number,
    in_,
    instant,
    json_path,
    json_text,
    json_type,
    json_value,
    lit,
    local_day,
    num,
    number_of,
    number_text,
    sessions,
    to_sql,
    try_number,
    value_rows,
)

__all__ = ["DIALECTS", "compile_segment", "computed_query", "segment_query", "to_sql"]

DIALECTS = ("duckdb", "postgres", "bigquery", "snowflake", "clickhouse")
_EVENTS = "person_events"
_PERSON = "canonical_person_id"
_SESSION_WINDOWS = ("this_session", "previous_session")
_INT_STATS = frozenset({"count", "distinct_count", "true_count", "false_count", "days_since_first",
                        "days_since_last"})  # fmt: skip
_TEXT_STATS = frozenset({"first", "last", "most_frequent"})
# user data statistics the one scan computes (the others rank or group the values)
_SCANNED_STATS = frozenset({"count", "sum", "min", "max", "avg", "true_count", "false_count"})
_SCAN = "ev"
_Column = tuple[str, exp.Expression, list[exp.Expression]]


def _names_events(condition: exp.Expression) -> bool:
    """Is `condition` one that says which events (`type = 'track'`, `event = 'buy'`)?"""
    return (
        isinstance(condition, exp.EQ)
        and isinstance(condition.this, exp.Column)
        and (condition.this.name in ("type", "event") and isinstance(condition.expression, exp.Literal))
    )


def _literal(value: Any) -> exp.Expression:
    if isinstance(value, bool):
        return lit("true" if value else "false")
    if isinstance(value, (int, float)):
        return num(value)
    return lit(str(value))


def _text_literal(value: Any) -> exp.Expression:
    """A value as the streaming evaluator's `_text` prints it (NULL for None)."""
    if value is None:
        return exp.cast(exp.Null(), "VARCHAR")
    if isinstance(value, bool):
        return lit("true" if value else "false")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, float)):
        return lit(repr(value))
    return lit(str(value))


def _compare(text: exp.Expression, op: str, value: Any) -> exp.Expression:
    """`_compare` of core.segments over a value's text (NULL: missing), two-valued."""
    cond = _comparison(text, op, value)
    if op in ("exists", "not_exists", "neq"):
        return cond
    return exp.Coalesce(this=cond, expressions=[exp.false()])


def _comparison(value: exp.Expression, op: str, expected: Any) -> exp.Expression:
    if op == "exists":
        return exp.not_(exp.Is(this=value, expression=exp.Null()))
    if op == "not_exists":
        return exp.Is(this=value, expression=exp.Null())
    if op == "eq":
        return exp.EQ(this=value, expression=_text_literal(expected))
    if op == "neq":
        return exp.NullSafeNEQ(this=value, expression=_text_literal(expected))
    if op == "in":
        return exp.In(this=value, expressions=[_text_literal(v) for v in expected])
    if op == "contains":
        return exp.GT(this=exp.StrPosition(this=value, substr=_text_literal(expected)), expression=num(0))
    cls = {"gt": exp.GT, "gte": exp.GTE, "lt": exp.LT, "lte": exp.LTE}[op]
    return cls(this=try_number(value), expression=_literal(expected))


def _join_on(alias: str) -> exp.Expression:
    return exp.EQ(this=col("person_id", alias), expression=col("person_id", "p"))


class _Compiler:
    def __init__(
        self,
        today: int,
        timezone: str,
        computed: Mapping[str, ComputedTrait],
        segments: Mapping[str, Rule],
        as_of: bool = False,
        hot: Collection[str] = (),
    ) -> None:
        self.today = today
        self.hot = frozenset(hot)
        self.timezone = timezone
        self.as_of = as_of
        self.computed = computed
        self.segments = segments
        # SQL text -> (alias, query, joined to people?): identical queries are shared
        self.ctes: dict[str, tuple[str, exp.Select, bool]] = {}
        # one scan per event name (the SQL of the conditions naming it) -> (alias, those
        # conditions, its columns: key -> (column, aggregate, the other conditions))
        self.scans: dict[str, tuple[str, list[exp.Expression], dict[str, _Column]]] = {}
        self.columns = 0
        self._inlining: list[str] = []

    def cte(self, query: exp.Select, joined: bool = True) -> str:
        key = query.sql()
        if key not in self.ctes:
            self.ctes[key] = (f"c{len(self.ctes)}", query, joined)
        return self.ctes[key][0]

    def value(self, alias: str) -> exp.Column:
        return col("v", alias)

    def scanned(self, aggregate: type[exp.AggFunc], rows: Sequence[exp.Expression],
                value: exp.Expression | None = None) -> exp.Column:  # fmt: skip
        """A column of the scan of the events `rows` name: `aggregate` of `value` (None:
        count) over the events matching all of `rows`. As `CASE WHEN rows THEN value END`,
        not FILTER: DuckDB computes an aggregate's argument for every row scanned."""
        which = [r for r in rows if _names_events(r)]
        group = exp.and_(*which).sql() if which else ""
        if group not in self.scans:
            self.scans[group] = (f"{_SCAN}{len(self.scans)}", which, {})
        alias, _, columns = self.scans[group]
        per_row = case([(exp.and_(*rows), value if value is not None else num(1))])
        key = f"{aggregate.__name__}:{per_row.sql()}"
        if key not in columns:
            self.columns += 1
            columns[key] = (f"v{self.columns}", aggregate(this=per_row), [r for r in rows if r not in which])
        return col(columns[key][0], alias)

    def window(self, first: int | None, last: int | None) -> list[exp.Expression]:
        return days_between(first, last, self.timezone)

    # -- conditions ----------------------------------------------------------------------

    def condition(self, rule: Rule) -> exp.Expression:
        if isinstance(rule, TraitIs):
            if self.as_of:
                alias = self.cte(self._trait_as_of(rule.trait))
                return _compare(json_text(col("v", alias), []), rule.op, rule.value)
            return _compare(json_text(col("traits", "p"), [rule.trait]), rule.op, rule.value)
        if isinstance(rule, Did):
            n = exp.Coalesce(this=self._counter(rule), expressions=[num(0)])
            cls = {"eq": exp.EQ, "gte": exp.GTE, "gt": exp.GT, "lte": exp.LTE, "lt": exp.LT}[rule.op]
            return cls(this=n, expression=num(rule.count))
        if isinstance(rule, FirstDid):
            return exp.Coalesce(this=self._first_did(rule), expressions=[exp.false()])
        if isinstance(rule, DataIs):
            return _compare(self.data_text(rule), rule.op, rule.value)
        if isinstance(rule, ComputedIs):
            return _compare(self.computed_text(rule.name), rule.op, rule.value)
        if isinstance(rule, InSegment):
            return self._segment(rule.name)
        if isinstance(rule, All):
            return exp.paren(exp.and_(*(self.condition(r) for r in rule.rules)))
        if isinstance(rule, Any_):
            return exp.paren(exp.or_(*(self.condition(r) for r in rule.rules)))
        assert isinstance(rule, Not)
        return exp.not_(exp.paren(self.condition(rule.rule)))

    def _segment(self, name: str) -> exp.Expression:
        if name not in self.segments:
            raise ValueError(f"segment {name!r} is not defined: pass it in `segments`")
        if name in self._inlining:
            raise ValueError(f"segment {name!r} reads itself")
        self._inlining.append(name)
        try:
            return exp.paren(self.condition(self.segments[name]))
        finally:
            self._inlining.pop()

    # -- event counters --------------------------------------------------------------------

    def _matching(self, cond: Did | FirstDid) -> list[exp.Expression]:
        channels = (cond.channel,) if cond.channel is not None else ()
        return event_filter(cond.event, channels, cond.store_id, cond.where, hot=self.hot)

    def _counter(self, cond: Did) -> exp.Column:
        rows = [*self._matching(cond), *self.window(did_first_day(cond, self.today), self.today)]
        return self.scanned(exp.Count, rows)

    def _first_did(self, cond: FirstDid) -> exp.Expression:
        """The first matching event (up to today) is on or after the window's first day."""
        first = self.today - cond.within_days + 1
        rows = [*self._matching(cond), *self.window(None, self.today)]
        start, exact = day_start(first, self.timezone)
        if exact:
            return exp.GTE(this=self.scanned(exp.Min, rows, col("timestamp")), expression=instant(start))
        return exp.GTE(this=self.scanned(exp.Min, rows, local_day(self.timezone)), expression=date_of(first))

    # -- user data -------------------------------------------------------------------------

    def data_text(self, rule: DataIs) -> exp.Expression:
        """The statistic of a user data field in a window, as text (NULL: none)."""
        event, _, path = rule.field.partition(".")
        session_window = rule.window in _SESSION_WINDOWS
        source = self.cte(self._sessions(), joined=False) if session_window else _EVENTS
        extra = ("sess", "cur") if session_window else ()
        if event == "$sessions":
            if not session_window:
                source = self.cte(self._sessions(), joined=False)
            extra = ("sess", "cur")
        conditions = field_filter(event, path)
        scannable = not session_window and event != "$sessions" and (path or rule.stat == "count")
        if scannable and rule.stat in _SCANNED_STATS:
            return self._scanned_stat(conditions, path, rule.stat, userdata.window_days(rule.window, self.today))
        rows, ordinals = value_rows(source, _PERSON, conditions, self.timezone, prop=path or None,
                                    cross_lists=False, extra=extra)  # fmt: skip
        if session_window:
            wanted = exp.Sub(this=col("cur"), expression=num(1)) if rule.window == "previous_session" else col("cur")
            window = [exp.EQ(this=col("sess"), expression=wanted)]
        else:
            window = self._days(*userdata.window_days(rule.window, self.today))
        return self._stat(rows, ordinals, window, rule.stat)

    def _trait_as_of(self, key: str) -> exp.Select:
        """(person_id, v): a trait's JSON value at the end of `today`, from the identify
        events up to then, as `core.people.apply_traits` keeps it: the latest write by
        (time, message id) wins (a `$unset` writes "none"); without one, the earliest
        `$set_once`. Order-independent, so the events alone give the exact value."""
        upto = exp.and_(*self.window(None, self.today)).sql("duckdb")
        path = to_sql(json_path([key]), "duckdb")
        once = to_sql(json_path(["$set_once", key]), "duckdb")
        unset = to_sql(json_path(["$unset"]), "duckdb")
        name = to_sql(lit(key), "duckdb")
        value, unset_value = f"json_extract(traits, {path})", f"json_extract(traits, {unset})"
        unsets = (
            f"(json_type({unset_value}) = 'VARCHAR' AND json_extract_string(traits, {unset}) = {name}) OR"
            f" (json_type({unset_value}) = 'ARRAY' AND list_contains(CAST({unset_value} AS VARCHAR[]), {name}))"
        )
        sql = f"""
            SELECT coalesce(w.person_id, o.person_id) AS person_id,
                CASE WHEN w.person_id IS NULL THEN o.v WHEN w.unset THEN NULL ELSE w.v END AS v
            FROM (
                SELECT {_PERSON} AS person_id, {value} AS v, json_type({value}) IS NULL AS unset
                FROM {_EVENTS}
                WHERE type = 'identify' AND {upto} AND (json_type({value}) IS NOT NULL OR {unsets})
                QUALIFY row_number() OVER (PARTITION BY {_PERSON} ORDER BY timestamp DESC, message_id DESC) = 1
            ) AS w
            FULL OUTER JOIN (
                SELECT {_PERSON} AS person_id, json_extract(traits, {once}) AS v
                FROM {_EVENTS}
                WHERE type = 'identify' AND {upto} AND json_type(json_extract(traits, {once})) IS NOT NULL
                QUALIFY row_number() OVER (PARTITION BY {_PERSON} ORDER BY timestamp, message_id) = 1
            ) AS o ON o.person_id = w.person_id
        """  # fmt: skip
        query = sqlglot.parse_one(sql, read="duckdb")
        assert isinstance(query, exp.Select)
        return query

    def _sessions(self) -> exp.Select:
        """The events numbered by session (`sessions`); as of a past day, only those up to
        its end, so that "this session" is the one that was current then."""
        if not self.as_of:
            return sessions(_EVENTS, _PERSON)
        upto = exp.select(exp.Star()).from_(_EVENTS, copy=False).where(exp.and_(*self.window(None, self.today)))
        return sessions(exp.alias_(upto.subquery(), "upto", table=True), _PERSON)

    def _days(self, first: int | None, last: int) -> list[exp.Expression]:
        """A calendar window over value rows (`ts`, `day`)."""
        return days_between(first, last, self.timezone, ts="ts", day=col("day"))

    def _scanned_stat(
        self, conditions: list[exp.Expression], path: str, stat: str, days: tuple[int | None, int]
    ) -> exp.Expression:
        """A plain statistic of a user data field (`value_rows` without lists) in the one scan."""
        where = [*conditions, *self.window(*days)]
        jtype: exp.Expression = exp.Null()
        vtext: exp.Expression = exp.cast(exp.Null(), "VARCHAR")
        if path:
            parts = path.split(".")
            if len(parts) > userdata.MAX_DEPTH:  # never summarised: deeper objects are skipped
                where.append(exp.false())
            jtype = json_type(json_value(col("properties"), parts))
            vtext = json_text(col("properties"), parts)
            if stat in ("count", "true_count", "false_count"):  # a number is a scalar: no need to check
                where.append(in_(jtype.copy(), SCALAR_TYPES))
        # a hot column holds `number_of` of a top-level property: sums, extremes and averages
        # read it (counts need the JSON's type: a string or a boolean counts too)
        column = hot_number(path, self.hot) if path and stat in ("sum", "min", "max", "avg") else None
        number = column if column is not None else number_of(jtype, vtext)
        v: exp.Expression
        if stat == "count":
            v = self.scanned(exp.Count, where)
        elif stat in ("true_count", "false_count"):
            flag = lit("true" if stat == "true_count" else "false")
            is_bool = exp.EQ(this=jtype.copy(), expression=lit("BOOLEAN"))
            v = self.scanned(exp.Count, [*where, is_bool, exp.EQ(this=vtext.copy(), expression=flag)])
        elif stat == "avg":
            # sum / numeric count, as the streaming side divides (not the dialect's AVG)
            total = self.scanned(exp.Sum, where, number)
            count = self.scanned(exp.Count, where, number.copy())
            v = exp.Div(this=total, expression=exp.Nullif(this=count, expression=num(0)))
        else:
            v = self.scanned({"sum": exp.Sum, "min": exp.Min, "max": exp.Max}[stat], where, number)
        if stat in userdata.COUNT_STATS:
            v = exp.Coalesce(this=v, expressions=[num(0)])
        if stat in _INT_STATS:
            return exp.cast(v, "VARCHAR")
        return number_text(v)

    def _stat(
        self, rows: exp.Select, ordinals: Sequence[str], window: list[exp.Expression], stat: str
    ) -> exp.Expression:
        alias = self.cte(stat_query(rows, ordinals, window, stat, self.today))
        v = self.value(alias)
        if stat in _TEXT_STATS:
            return v
        if stat in userdata.COUNT_STATS:
            v = exp.Coalesce(this=v, expressions=[num(0)])
        if stat in _INT_STATS:
            return exp.cast(v, "VARCHAR")
        return number_text(v)

    # -- computed traits -------------------------------------------------------------------

    def computed_text(self, name: str) -> exp.Expression:
        trait = self.computed.get(name)
        if trait is None:
            raise ValueError(f"computed trait {name!r} is not defined: pass it in `computed`")
        if isinstance(trait, Cases):
            return case([(self.condition(rule), _text_literal(value)) for rule, value in trait.cases],
                        _text_literal(trait.default))  # fmt: skip
        return self._aggregate(trait)

    def aggregate_rows(self, trait: Aggregate) -> tuple[exp.Select, list[str]]:
        conditions = event_filter(None if trait.event == "*" else trait.event, trait.channels, trait.store_id,
                                  trait.where, hot=self.hot)  # fmt: skip
        return value_rows(_EVENTS, _PERSON, conditions, self.timezone, prop=trait.prop, cross_lists=True)

    def _aggregate(self, trait: Aggregate) -> exp.Expression:
        rows, ordinals = self.aggregate_rows(trait)
        return self._stat(rows, ordinals, self._days(*trait.first_day(self.today)), trait.agg)


def stat_query(
    rows: exp.Select, ordinals: Sequence[str], window: list[exp.Expression], stat: str, today: int
) -> exp.Select:
    """Per person, one statistic (`v`) of the value rows in a window (core.userdata.stat_of)."""
    jtype, vtext = col("jtype"), col("vtext")
    rows = rows.where(exp.and_(*window), copy=False) if window else rows
    source = exp.alias_(rows.subquery(), "r", table=True)
    person = col("person_id")
    if stat in ("first", "last"):
        # first: the earliest (time, message id, position); last: the latest event's
        # first value (the streaming side keeps the first of equal keys)
        desc = stat == "last"
        order = [exp.Ordered(this=col("ts"), desc=desc), exp.Ordered(this=col("mid"), desc=desc)]
        order += [exp.Ordered(this=col(o), desc=False) for o in ordinals]
        rank = exp.Window(this=exp.RowNumber(), partition_by=[person], order=exp.Order(expressions=order))
        ranked = exp.select(person, exp.alias_(canonical_text(jtype, vtext), "v"), exp.alias_(rank, "rn")).from_(
            source, copy=False
        )
        return (
            exp.select(person, col("v"))
            .from_(exp.alias_(ranked.subquery(), "ranked", table=True), copy=False)
            .where(exp.EQ(this=col("rn"), expression=num(1)), copy=False)
        )
    if stat == "most_frequent":
        # the most frequent string, ties to the smallest
        n = exp.Count(this=exp.Star())
        order = exp.Order(expressions=[exp.Ordered(this=n, desc=True), exp.Ordered(this=vtext.copy(), desc=False)])
        rank = exp.Window(this=exp.RowNumber(), partition_by=[person.copy()], order=order)
        counted = (
            exp.select(person, exp.alias_(vtext, "v"), exp.alias_(rank, "rn"))
            .from_(source, copy=False)
            .where(exp.EQ(this=jtype, expression=lit("VARCHAR")), copy=False)
            .group_by(person.copy(), vtext.copy(), copy=False)
        )
        return (
            exp.select(col("person_id"), col("v"))
            .from_(exp.alias_(counted.subquery(), "counted", table=True), copy=False)
            .where(exp.EQ(this=col("rn"), expression=num(1)), copy=False)
        )
    number = number_of(jtype, vtext)
    value: exp.Expression
    if stat == "count":
        value = exp.Count(this=exp.Star())
    elif stat == "sum":
        value = exp.Sum(this=number)
    elif stat == "min":
        value = exp.Min(this=number)
    elif stat == "max":
        value = exp.Max(this=number)
    elif stat == "avg":
        # sum / numeric count, as the streaming side divides (not the dialect's AVG)
        value = exp.Div(this=exp.Sum(this=number), expression=exp.Nullif(this=exp.Count(this=number.copy()),
                                                                          expression=num(0)))  # fmt: skip
    elif stat == "distinct_count":
        strings = case([(exp.EQ(this=jtype, expression=lit("VARCHAR")), vtext)])
        value = exp.Count(this=exp.Distinct(expressions=[strings]))
    elif stat in ("true_count", "false_count"):
        flag = lit("true" if stat == "true_count" else "false")
        hit = exp.and_(exp.EQ(this=jtype, expression=lit("BOOLEAN")), exp.EQ(this=vtext, expression=flag))
        value = exp.Sum(this=case([(hit, num(1))], num(0)))
    elif stat in ("days_since_first", "days_since_last"):
        day = exp.Min(this=col("day")) if stat == "days_since_first" else exp.Max(this=col("day"))
        value = exp.DateDiff(this=date_of(today), expression=day, unit=exp.var("DAY"))
    else:
        raise ValueError(f"unknown statistic {stat!r}")
    return exp.select(person, exp.alias_(value, "v")).from_(source, copy=False).group_by(person.copy(), copy=False)


def _cheap(condition: exp.Expression) -> bool:
    return condition.find(exp.JSONExtract, exp.JSONExtractScalar, exp.JSONType) is None


def _bounds(disjuncts: list[list[exp.Expression]]) -> list[exp.Expression]:
    """The widest timestamp window of all disjuncts (`days_between`'s bounds), on its own so
    that the scan can prune by it: DuckDB prunes by a plain comparison, not by an OR."""
    out: list[exp.Expression] = []
    for cls, widest in ((exp.GTE, min), (exp.LT, max)):
        found = []
        for conjuncts in disjuncts:
            values = [c.expression.this.name for c in conjuncts if isinstance(c, cls) and c.this == col("timestamp")]
            if not values:
                break
            found.append(max(values) if cls is exp.GTE else min(values))  # ISO, UTC: text order is time order
        else:
            bound = widest(found)
            out.append(cls(this=col("timestamp"), expression=exp.cast(lit(bound), "TIMESTAMPTZ")))
    return out


def _scan(which: list[exp.Expression], columns: dict[str, _Column]) -> exp.Select:
    """One grouped scan of the events `which` names: a column per condition. Besides `which`,
    it reads the rows any condition may match by their cheap parts (the JSON is parsed in
    the aggregates): plain conditions, which DuckDB applies in the scan (so `properties` is
    read only for the rows they keep) and prunes by (the widest window)."""
    select = [exp.alias_(col(_PERSON), "person_id")]
    select += [exp.alias_(aggregate, name) for name, aggregate, _ in columns.values()]
    disjuncts: dict[str, list[exp.Expression]] = {}
    for _, _, rows in columns.values():
        cheap = [r for r in rows if _cheap(r)]
        disjuncts.setdefault(exp.and_(*cheap).sql() if cheap else "", cheap)
    where = [c.copy() for c in which]
    if "" not in disjuncts:
        bounds = _bounds(list(disjuncts.values()))
        where += bounds
        implied = {b.sql() for b in bounds}
        if not any({c.sql() for c in conjuncts} <= implied for conjuncts in disjuncts.values()):
            where.append(exp.or_(*(exp.paren(exp.and_(*c)) for c in disjuncts.values())))
    query = exp.select(*select).from_(_EVENTS, copy=False).group_by(col(_PERSON), copy=False)
    return query.where(exp.and_(*where), copy=False) if where else query


def _assemble(compiler: _Compiler, select: list[exp.Expression], where: exp.Expression | None) -> exp.Select:
    query = exp.select(*select).from_(exp.alias_(exp.table_("people"), "p", table=True), copy=False)
    for alias, which, columns in compiler.scans.values():
        query = query.with_(alias, as_=_scan(which, columns), copy=False)
        query = query.join(exp.table_(alias), on=_join_on(alias), join_type="left", copy=False)
    for alias, cte, joined in compiler.ctes.values():
        query = query.with_(alias, as_=cte, copy=False)
        if joined:
            query = query.join(exp.table_(alias), on=_join_on(alias), join_type="left", copy=False)
    return query.where(where, copy=False) if where is not None else query


def segment_query(
    rule: Rule, *, today: int, timezone: str, computed: Mapping[str, ComputedTrait] | None = None,
    segments: Mapping[str, Rule] | None = None, as_of: bool = False, hot: Collection[str] = (),
) -> exp.Select:  # fmt: skip
    """The members of `rule` on `today` (days since 1970-01-01 in `timezone`), as a query.

    `computed` and `segments` are the workspace's definitions the rule may name
    (`{"computed": ...}`, `{"segment": ...}`); a segment is inlined, recursively.

    `as_of`: the members as they were at the end of `today`, a past day: only people
    first seen by then, and only the events that had happened by then (event windows
    already end with `today`; sessions are cut there too; a trait is the value the identify
    events up to then give it, as `core.people.apply_traits` resolves them).

    `hot`: the `core.ports.HOT_PROPERTIES` the events have columns of (the store's
    `hot_properties`); a condition reads such a column where it says what the JSON says.
    """
    compiler = _Compiler(today, timezone, computed or {}, segments or {}, as_of, hot)
    where = compiler.condition(rule)
    if as_of:
        seen = [exp.not_(exp.Is(this=col("first_seen", "p"), expression=exp.Null()))]
        seen += days_between(None, today, timezone, ts="first_seen")
        for c in seen[1:]:  # the bounds name `first_seen`: qualify it with the people table
            for column in c.find_all(exp.Column):
                if column.name == "first_seen":
                    column.set("table", exp.to_identifier("p"))
        where = exp.and_(*seen, exp.paren(where))
    return _assemble(compiler, [col("person_id", "p")], where)


def computed_query(
    trait: ComputedTrait, *, today: int, timezone: str, computed: Mapping[str, ComputedTrait] | None = None,
    hot: Collection[str] = (),
) -> exp.Select:  # fmt: skip
    """(person_id, value) of a computed trait for every person on `today`.

    The value is a number for counts, sums, averages, minimums, maximums and days since;
    text otherwise (first, last, most frequent, and the value of a cases trait).
    """
    compiler = _Compiler(today, timezone, {**(computed or {}), trait.name: trait}, {}, hot=hot)
    if isinstance(trait, Cases):
        value = compiler.computed_text(trait.name)
    else:
        rows, ordinals = compiler.aggregate_rows(trait)
        alias = compiler.cte(stat_query(rows, ordinals, compiler._days(*trait.first_day(today)), trait.agg, today))
        value = compiler.value(alias)
        if trait.agg in userdata.COUNT_STATS:
            value = exp.Coalesce(this=value, expressions=[num(0)])
    return _assemble(compiler, [col("person_id", "p"), exp.alias_(value, "value")], None)


def compile_segment(
    rule: Rule, *, today: int, timezone: str, dialect: str = "duckdb", pretty: bool = False,
    computed: Mapping[str, ComputedTrait] | None = None, segments: Mapping[str, Rule] | None = None,
    as_of: bool = False, hot: Collection[str] = (),
) -> str:  # fmt: skip
    if dialect not in DIALECTS:
        raise ValueError(f"Unknown dialect {dialect!r}: use one of {', '.join(DIALECTS)}")
    query = segment_query(rule, today=today, timezone=timezone, computed=computed, segments=segments, as_of=as_of,
                          hot=hot)  # fmt: skip
    return to_sql(query, dialect, pretty=pretty)
