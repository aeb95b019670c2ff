"""Segment rules compiled to SQL (bulk evaluation: counts, previews, exports).

Built with sqlglot's expression builder, never by pasting strings, so the same rule runs
on DuckDB (the embedded analytics store) and prints for PostgreSQL, BigQuery, Snowflake
or ClickHouse. The meaning is the streaming evaluator's (`tsunagu.core.segments`):
event windows are calendar days in the workspace's zone, today included.

Tables read: `people(person_id, traits JSON)` and `person_events` (events with their
current `canonical_person_id`), as the analytics store defines them.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from sqlglot import exp

from ..core.segments import All, Any_, Did, Rule, TraitIs

__all__ = ["DIALECTS", "compile_segment", "segment_query"]

DIALECTS = ("duckdb", "postgres", "bigquery", "snowflake", "clickhouse")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _json_text(column: exp.Column, key: str) -> exp.Expression:
    # `$.key` where the key allows (every dialect reads it); quoted only when it must be
    path = exp.Literal.string(f"$.{key}" if _PLAIN_KEY.match(key) else f'$."{key}"')
    return exp.JSONExtractScalar(this=column, expression=path)


def _literal(value: Any) -> exp.Expression:
    if isinstance(value, bool):
        return exp.Literal.string("true" if value else "false")
    if isinstance(value, (int, float)):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _text_literal(value: Any) -> exp.Expression:
    if isinstance(value, bool):
        return exp.Literal.string("true" if value else "false")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return exp.Literal.string(str(value))


def _as_number(e: exp.Expression) -> exp.Expression:
    return exp.TryCast(this=e, to=exp.DataType.build("DOUBLE"))


def _trait(rule: TraitIs) -> exp.Expression:
    # Two-valued, like the streaming evaluator: a missing trait makes a comparison false
    # (not NULL, which NOT would keep NULL and drop the person from "not" rules).
    cond = _trait_comparison(rule)
    if rule.op in ("exists", "not_exists", "neq"):
        return cond
    return exp.Coalesce(this=cond, expressions=[exp.false()])


def _trait_comparison(rule: TraitIs) -> exp.Expression:
    value = _json_text(exp.column("traits", table="p"), rule.trait)
    op = rule.op
    if op == "exists":
        return exp.Not(this=exp.Is(this=value, expression=exp.Null()))
    if op == "not_exists":
        return exp.Is(this=value, expression=exp.Null())
    if op == "eq":
        return exp.EQ(this=value, expression=_text_literal(rule.value))
    if op == "neq":
        return exp.NullSafeNEQ(this=value, expression=_text_literal(rule.value))
    if op == "in":
        return exp.In(this=value, expressions=[_text_literal(v) for v in rule.value])
    if op == "contains":
        return exp.GT(
            this=exp.StrPosition(this=value, substr=_text_literal(rule.value)), expression=exp.Literal.number(0)
        )
    cls = {"gt": exp.GT, "gte": exp.GTE, "lt": exp.LT, "lte": exp.LTE}[op]
    return cls(this=_as_number(value), expression=_literal(rule.value))


def _where_property(key: str, value: Any) -> exp.Expression:
    extracted = _json_text(exp.column("properties"), key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return exp.EQ(this=_as_number(extracted), expression=_literal(value))
    return exp.EQ(this=extracted, expression=_text_literal(value))


def _local_day(timezone: str) -> exp.Expression:
    local = exp.AtTimeZone(this=exp.column("timestamp"), zone=exp.Literal.string(timezone))
    return exp.cast(local, "DATE")


def _date(day: int) -> exp.Expression:
    return exp.cast(exp.Literal.string((date(1970, 1, 1) + timedelta(days=day)).isoformat()), "DATE")


def _counter(cond: Did, today: int, timezone: str) -> exp.Select:
    conditions: list[exp.Expression] = [
        exp.EQ(this=exp.column("type"), expression=exp.Literal.string("track")),
        exp.EQ(this=exp.column("event"), expression=exp.Literal.string(cond.event)),
    ]
    if cond.channel is not None:
        conditions.append(exp.EQ(this=exp.column("channel"), expression=exp.Literal.string(cond.channel)))
    if cond.store_id is not None:
        conditions.append(exp.EQ(this=exp.column("store_id"), expression=exp.Literal.string(cond.store_id)))
    conditions += [_where_property(k, v) for k, v in cond.where]
    first = today - cond.within_days + 1 if cond.within_days is not None else None
    day = _local_day(timezone)
    conditions.append(exp.LTE(this=day, expression=_date(today)))
    if first is not None:
        conditions.append(exp.GTE(this=day.copy(), expression=_date(first)))
    return (
        exp.select(
            exp.alias_(exp.column("canonical_person_id"), "person_id"),
            exp.alias_(exp.Count(this=exp.Star()), "n"),
        )
        .from_("person_events")
        .where(exp.and_(*conditions))
        .group_by(exp.column("canonical_person_id"))
    )


class _Compiler:
    def __init__(self, today: int, timezone: str) -> None:
        self.today = today
        self.timezone = timezone
        self.ctes: dict[str, tuple[str, exp.Select]] = {}  # counter key -> (alias, query)

    def condition(self, rule: Rule) -> exp.Expression:
        if isinstance(rule, TraitIs):
            return _trait(rule)
        if isinstance(rule, Did):
            key = (rule.key, rule.within_days)
            if key not in self.ctes:
                self.ctes[key] = (f"c{len(self.ctes)}", _counter(rule, self.today, self.timezone))
            alias = self.ctes[key][0]
            n = exp.Coalesce(this=exp.column("n", table=alias), expressions=[exp.Literal.number(0)])
            cls = {"eq": exp.EQ, "gte": exp.GTE, "gt": exp.GT, "lte": exp.LTE, "lt": exp.LT}[rule.op]
            return cls(this=n, expression=exp.Literal.number(rule.count))
        if isinstance(rule, All):
            return exp.paren(exp.and_(*(self.condition(r) for r in rule.rules)))
        if isinstance(rule, Any_):
            return exp.paren(exp.or_(*(self.condition(r) for r in rule.rules)))
        return exp.Not(this=exp.paren(self.condition(rule.rule)))


def segment_query(rule: Rule, *, today: int, timezone: str) -> exp.Select:
    """The members of `rule` on `today` (days since 1970-01-01 in `timezone`), as a query."""
    compiler = _Compiler(today, timezone)
    where = compiler.condition(rule)
    query = exp.select(exp.column("person_id", table="p")).from_(exp.alias_(exp.table_("people"), "p", table=True))
    for alias, counter in compiler.ctes.values():
        query = query.with_(alias, as_=counter).join(
            exp.table_(alias),
            on=exp.EQ(this=exp.column("person_id", table=alias), expression=exp.column("person_id", table="p")),
            join_type="left",
        )
    return query.where(where)


def compile_segment(rule: Rule, *, today: int, timezone: str, dialect: str = "duckdb", pretty: bool = False) -> str:
    if dialect not in DIALECTS:
        raise ValueError(f"Unknown dialect {dialect!r}: use one of {', '.join(DIALECTS)}")
    return segment_query(rule, today=today, timezone=timezone).sql(dialect=dialect, pretty=pretty)
