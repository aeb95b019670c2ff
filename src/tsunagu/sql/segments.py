"""Segment rules compiled to SQL (bulk evaluation: counts, previews, exports).

Built with sqlglot's expression builder, never by pasting strings, so the same rule runs
on DuckDB (the embedded analytics store) and prints for PostgreSQL, BigQuery, Snowflake
or ClickHouse. The meaning is the streaming evaluator's (`tsunagu.core.segments`):
event windows are calendar days in the workspace's zone, today included, and no window
reaches past today.

Tables read: `people(person_id, traits JSON)` and `person_events` (events with their
current `canonical_person_id`), as the analytics store defines them.

Every condition that reads history is one per-person query (a CTE, LEFT JOINed to
`people`; identical ones are shared). A value is compared as the streaming side does:
as text for eq, neq, in and contains (3.0 prints as "3", true as "true"), as a number for
gt, gte, lt and lte, and a missing value makes every comparison false but neq and
not_exists (two-valued, so that `not` keeps its meaning).

User data fields (`DataIs`) read the JSON properties at the field's path (nested
objects, lists skipped); computed traits' paths may cross lists (`items.category`),
unnested with their positions so that "first" and "last" break ties the streaming way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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
    canonical_text,
    case,
    col,
    date_of,
    event_filter,
    json_text,
    lit,
    local_day,
    num,
    number_of,
    number_text,
    sessions,
    try_number,
    value_rows,
)

__all__ = ["DIALECTS", "compile_segment", "computed_query", "segment_query"]

DIALECTS = ("duckdb", "postgres", "bigquery", "snowflake", "clickhouse")
_EVENTS = "person_events"
_PERSON = "canonical_person_id"
_SESSION_WINDOWS = ("this_session", "previous_session")
_INT_STATS = frozenset({"count", "distinct_count", "true_count", "false_count", "days_since_first",
                        "days_since_last"})  # fmt: skip
_TEXT_STATS = frozenset({"first", "last", "most_frequent"})


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
        self, today: int, timezone: str, computed: Mapping[str, ComputedTrait], segments: Mapping[str, Rule]
    ) -> None:
        self.today = today
        self.timezone = timezone
        self.computed = computed
        self.segments = segments
        # SQL text -> (alias, query, joined to people?): identical queries are shared
        self.ctes: dict[str, tuple[str, exp.Select, bool]] = {}
        self._inlining: list[str] = []

    def cte(self, query: exp.Select, joined: bool = True) -> str:
        key = query.sql()
        if key not in self.ctes:
            self.ctes[key] = (f"c{len(self.ctes)}", query, joined)
        return self.ctes[key][0]

    def value(self, alias: str) -> exp.Column:
        return col("v", alias)

    # -- conditions ----------------------------------------------------------------------

    def condition(self, rule: Rule) -> exp.Expression:
        if isinstance(rule, TraitIs):
            return _compare(json_text(col("traits", "p"), [rule.trait]), rule.op, rule.value)
        if isinstance(rule, Did):
            alias = self.cte(self._counter(rule))
            n = exp.Coalesce(this=self.value(alias), expressions=[num(0)])
            cls = {"eq": exp.EQ, "gte": exp.GTE, "gt": exp.GT, "lte": exp.LTE, "lt": exp.LT}[rule.op]
            return cls(this=n, expression=num(rule.count))
        if isinstance(rule, FirstDid):
            alias = self.cte(self._first_day(rule))
            cond = exp.GTE(this=self.value(alias), expression=date_of(self.today - rule.within_days + 1))
            return exp.Coalesce(this=cond, expressions=[exp.false()])
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
        return event_filter(cond.event, channels, cond.store_id, cond.where)

    def _counter(self, cond: Did) -> exp.Select:
        day = local_day(self.timezone)
        conditions = [*self._matching(cond), exp.LTE(this=day, expression=date_of(self.today))]
        first = did_first_day(cond, self.today)
        if first is not None:
            conditions.append(exp.GTE(this=day.copy(), expression=date_of(first)))
        return self._per_person(exp.Count(this=exp.Star()), conditions)

    def _first_day(self, cond: FirstDid) -> exp.Select:
        day = local_day(self.timezone)
        conditions = [*self._matching(cond), exp.LTE(this=day, expression=date_of(self.today))]
        return self._per_person(exp.Min(this=day.copy()), conditions)

    def _per_person(self, value: exp.Expression, conditions: list[exp.Expression]) -> exp.Select:
        return (
            exp.select(exp.alias_(col(_PERSON), "person_id"), exp.alias_(value, "v"))
            .from_(_EVENTS, copy=False)
            .where(exp.and_(*conditions), copy=False)
            .group_by(col(_PERSON), copy=False)
        )

    # -- user data -------------------------------------------------------------------------

    def data_text(self, rule: DataIs) -> exp.Expression:
        """The statistic of a user data field in a window, as text (NULL: none)."""
        event, _, path = rule.field.partition(".")
        session_window = rule.window in _SESSION_WINDOWS
        source = self.cte(sessions(_EVENTS, _PERSON), joined=False) if session_window else _EVENTS
        extra = ("sess", "cur") if session_window else ()
        conditions: list[exp.Expression]
        if event == "$sessions":
            if not session_window:
                source = self.cte(sessions(_EVENTS, _PERSON), joined=False)
            conditions = [exp.EQ(this=col("sess_start"), expression=num(1))]
            if path:
                conditions.append(exp.false())
            extra = ("sess", "cur")
        elif event in ("$page", "$screen"):
            conditions = [exp.EQ(this=col("type"), expression=lit(event[1:]))]
        elif event.startswith("$"):
            conditions = [exp.false()]
        else:
            conditions = event_filter(event)
        rows, ordinals = value_rows(source, _PERSON, conditions, self.timezone, prop=path or None,
                                    cross_lists=False, extra=extra)  # fmt: skip
        if session_window:
            wanted = exp.Sub(this=col("cur"), expression=num(1)) if rule.window == "previous_session" else col("cur")
            window = [exp.EQ(this=col("sess"), expression=wanted)]
        else:
            window = self._days(*userdata.window_days(rule.window, self.today))
        return self._stat(rows, ordinals, window, rule.stat)

    def _days(self, first: int | None, last: int) -> list[exp.Expression]:
        out: list[exp.Expression] = [exp.LTE(this=col("day"), expression=date_of(last))]
        if first is not None:
            out.append(exp.GTE(this=col("day"), expression=date_of(first)))
        return out

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
                                  trait.where)  # fmt: skip
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


def _assemble(compiler: _Compiler, select: list[exp.Expression], where: exp.Expression | None) -> exp.Select:
    query = exp.select(*select).from_(exp.alias_(exp.table_("people"), "p", table=True), copy=False)
    for alias, cte, joined in compiler.ctes.values():
        query = query.with_(alias, as_=cte, copy=False)
        if joined:
            query = query.join(exp.table_(alias), on=_join_on(alias), join_type="left", copy=False)
    return query.where(where, copy=False) if where is not None else query


def segment_query(
    rule: Rule, *, today: int, timezone: str, computed: Mapping[str, ComputedTrait] | None = None,
    segments: Mapping[str, Rule] | None = None,
) -> exp.Select:  # fmt: skip
    """The members of `rule` on `today` (days since 1970-01-01 in `timezone`), as a query.

    `computed` and `segments` are the workspace's definitions the rule may name
    (`{"computed": ...}`, `{"segment": ...}`); a segment is inlined, recursively.
    """
    compiler = _Compiler(today, timezone, computed or {}, segments or {})
    where = compiler.condition(rule)
    return _assemble(compiler, [col("person_id", "p")], where)


def computed_query(
    trait: ComputedTrait, *, today: int, timezone: str, computed: Mapping[str, ComputedTrait] | None = None
) -> exp.Select:
    """(person_id, value) of a computed trait for every person on `today`.

    The value is a number for counts, sums, averages, minimums, maximums and days since;
    text otherwise (first, last, most frequent, and the value of a cases trait).
    """
    compiler = _Compiler(today, timezone, {**(computed or {}), trait.name: trait}, {})
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
) -> str:  # fmt: skip
    if dialect not in DIALECTS:
        raise ValueError(f"Unknown dialect {dialect!r}: use one of {', '.join(DIALECTS, copy=False)}")
    query = segment_query(rule, today=today, timezone=timezone, computed=computed, segments=segments)
    return query.sql(dialect=dialect, pretty=pretty)
