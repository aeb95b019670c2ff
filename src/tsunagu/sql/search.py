"""People search over the analytics store's `people` table, as queries.

Built with sqlglot's expression builder like the segment SQL: the search text, the trait
name and value and the ids matched exactly are bound parameters (`?`), never text in the
query. The text is matched as a substring of the traits and identifiers (their JSON,
case-insensitive): `like_pattern` escapes `%`, `_` and the escape character itself, so
that they match themselves and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from ._rows import col, lit
from .timeline import contains, param, render

__all__ = ["LIKE_ESCAPE", "PeopleFilter", "like_pattern", "people_count_query", "people_search_query",
           "people_totals_query", "trait_pointer"]  # fmt: skip

#: the escape character of the search's LIKE patterns
LIKE_ESCAPE = "\\"


def like_pattern(text: str) -> str:
    """A LIKE pattern (escape `LIKE_ESCAPE`) matching any text that contains `text`."""
    e = LIKE_ESCAPE
    return "%" + text.replace(e, e + e).replace("%", e + "%").replace("_", e + "_") + "%"


def trait_pointer(name: str) -> str:
    """The JSON Pointer (RFC 6901) naming trait `name` exactly: two escapes (~0, ~1), where a
    `$."..."` path breaks on a backslash or a quote in the name."""
    return "/" + name.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True, slots=True)
class PeopleFilter:
    """What a people search keeps: `text` anywhere in traits or identifiers, trait `trait`
    present (`value` None) or with the text `value`; `exclude` the ids found otherwise
    (exact identifier matches, listed first by the caller)."""

    text: str | None = None
    trait: str | None = None
    value: str | None = None
    exclude: Sequence[str] = ()

    def where(self) -> tuple[list[exp.Expression], list[Any]]:
        where: list[exp.Expression] = []
        params: list[Any] = []
        if self.text:
            pattern = like_pattern(self.text)
            where.append(exp.paren(exp.or_(_ilike("traits"), _ilike("identifiers"))))
            params += [pattern, pattern]
        if self.trait is not None:
            pointer = exp.Anonymous(this="json_extract", expressions=[col("traits"), param()])
            if self.value is None:
                where.append(exp.not_(exp.Is(this=pointer, expression=exp.Null())))
                params.append(trait_pointer(self.trait))
            else:
                text = exp.Anonymous(this="json_extract_string", expressions=[col("traits"), param()])
                where.append(exp.EQ(this=text, expression=param()))
                params += [trait_pointer(self.trait), self.value]
        if self.exclude:
            where.append(exp.not_(contains("person_id")))
            params.append(list(self.exclude))
        return where, params


def _ilike(column: str) -> exp.Expression:
    text = exp.cast(col(column), "VARCHAR")
    return exp.Escape(this=exp.ILike(this=text, expression=param()), expression=lit(LIKE_ESCAPE))


def _people(where: list[exp.Expression], *columns: exp.Expression) -> exp.Select:
    query = exp.select(*columns).from_("people")
    return query.where(exp.and_(*where)) if where else query


def people_search_query(search: PeopleFilter, *, limit: int, offset: int) -> tuple[str, list[Any]]:
    """Person ids that match, newest activity first (then by id), `limit` from `offset`."""
    where, params = search.where()
    query = (
        _people(where, col("person_id"))
        .order_by(exp.Ordered(this=col("last_seen"), desc=True), col("person_id"))
        .limit(param())
        .offset(param())
    )
    return render(query), [*params, limit, offset]


def people_count_query(search: PeopleFilter) -> tuple[str, list[Any]]:
    """How many people match (the exact matches excluded: the caller counts them)."""
    where, params = search.where()
    return render(_people(where, exp.Count(this=exp.Star()))), params


def people_totals_query() -> tuple[str, list[Any]]:
    """(people, people with a member id): the overview page's headline."""
    member = exp.not_(exp.Is(this=exp.Anonymous(this="json_extract", expressions=[col("identifiers"), param()]),
                             expression=exp.Null()))  # fmt: skip
    identified = exp.Filter(this=exp.Count(this=exp.Star()), expression=exp.Where(this=member))
    return render(_people([], exp.Count(this=exp.Star()), identified)), ["$.user_id"]
