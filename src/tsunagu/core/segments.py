"""Segments: a rule tree over traits and event history, evaluated per person in real time.

A rule is JSON (docs/segments.md):

    {"all": [
      {"trait": "member_rank", "op": "in", "value": ["ゴールド", "プラチナ"]},
      {"did": "buy", "channel": "store", "within_days": 90, "count": {"op": "gte", "value": 2}},
      {"not": {"did": "buy", "channel": "web"}}
    ]}

Event conditions are counted in per-person day buckets kept on every event (constant work
per event: one counter), and summed over the window when a rule is read, so "in the last
N days" needs no per-event scan. Windows are calendar days in the workspace's time zone,
today included. The same rule compiles to SQL (`tsunagu.sql.segments`) with the same
meaning; a property test holds the two to agreement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .errors import FieldError, InvalidInput

__all__ = [
    "COMPARISONS",
    "All",
    "Any_",
    "Did",
    "Not",
    "Rule",
    "Segment",
    "TraitIs",
    "day_of",
    "evaluate",
    "parse_rule",
]

COMPARISONS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "exists", "not_exists", "contains")
MAX_WINDOW_DAYS = 3660


@dataclass(frozen=True)
class TraitIs:
    trait: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Did:
    """Did `event` (with filters) `count` times within the last `within_days` days."""

    event: str
    channel: str | None = None
    store_id: str | None = None
    where: tuple[tuple[str, Any], ...] = ()  # property equality filters
    within_days: int | None = None  # None: all time
    op: str = "gte"
    count: int = 1

    @property
    def key(self) -> str:
        """The counter this condition reads: one per (event, filters), shared by rules."""
        return json.dumps([self.event, self.channel, self.store_id, list(self.where)], ensure_ascii=False)


@dataclass(frozen=True)
class All:
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Any_:
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Not:
    rule: Rule


Rule = TraitIs | Did | All | Any_ | Not


@dataclass
class Segment:
    name: str
    rule: Rule
    counters: list[Did] = field(default_factory=list)
    traits: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        _collect(self.rule, self)


def _collect(rule: Rule, seg: Segment) -> None:
    if isinstance(rule, Did):
        seg.counters.append(rule)
    elif isinstance(rule, TraitIs):
        seg.traits.add(rule.trait)
    elif isinstance(rule, (All, Any_)):
        for r in rule.rules:
            _collect(r, seg)
    elif isinstance(rule, Not):
        _collect(rule.rule, seg)


# -- parsing ---------------------------------------------------------------------------


def parse_rule(data: Any, path: str = "rule") -> Rule:
    """Parse and validate a rule; every problem is reported with its exact path."""
    errors: list[FieldError] = []
    rule = _parse(data, path, errors)
    if errors:
        raise InvalidInput("; ".join(f"{e.field}: {e.reason}" for e in errors), errors)
    assert rule is not None
    return rule


def _parse(data: Any, path: str, errors: list[FieldError]) -> Rule | None:
    if not isinstance(data, dict) or len([k for k in ("all", "any", "not", "trait", "did") if k in data]) != 1:
        errors.append(FieldError(path, "must be an object with exactly one of all, any, not, trait, did"))
        return None
    if "all" in data or "any" in data:
        key = "all" if "all" in data else "any"
        items = data[key]
        if not isinstance(items, list) or not items:
            errors.append(FieldError(f"{path}.{key}", "must be a non-empty list of rules"))
            return None
        parsed = [_parse(item, f"{path}.{key}[{i}]", errors) for i, item in enumerate(items)]
        rules = tuple(r for r in parsed if r is not None)
        return All(rules) if key == "all" else Any_(rules)
    if "not" in data:
        inner = _parse(data["not"], f"{path}.not", errors)
        return Not(inner) if inner is not None else None
    if "trait" in data:
        name, op = data["trait"], data.get("op", "eq")
        if not isinstance(name, str) or not name:
            errors.append(FieldError(f"{path}.trait", "must be a trait name"))
        if op not in COMPARISONS:
            errors.append(FieldError(f"{path}.op", f"{op!r} is not one of {', '.join(COMPARISONS)}"))
        value = data.get("value")
        if op in ("gt", "gte", "lt", "lte") and not isinstance(value, (int, float)):
            errors.append(FieldError(f"{path}.value", f"must be a number for {op}"))
        if op == "in" and not isinstance(value, list):
            errors.append(FieldError(f"{path}.value", "must be a list for in"))
        if op in ("eq", "neq", "contains") and not isinstance(value, (str, int, float, bool)):
            errors.append(FieldError(f"{path}.value", f"must be a string, number or boolean for {op}"))
        return TraitIs(name, op, tuple(value) if isinstance(value, list) else value)
    # did
    event = data["did"]
    if not isinstance(event, str) or not event:
        errors.append(FieldError(f"{path}.did", "must be an event name"))
    unknown = set(data) - {"did", "channel", "store_id", "where", "within_days", "count"}
    if unknown:
        errors.append(FieldError(f"{path}.{sorted(unknown)[0]}", "is not a field of a did condition"))
    within = data.get("within_days")
    if within is not None and (
        not isinstance(within, int) or isinstance(within, bool) or not 1 <= within <= MAX_WINDOW_DAYS
    ):
        errors.append(FieldError(f"{path}.within_days", f"must be a whole number of days, 1 to {MAX_WINDOW_DAYS}"))
    where = data.get("where", {})
    if not isinstance(where, dict) or not all(isinstance(v, (str, int, float, bool)) for v in where.values()):
        errors.append(FieldError(f"{path}.where", "must map property names to plain values"))
        where = {}
    count = data.get("count", {"op": "gte", "value": 1})
    if not isinstance(count, dict) or count.get("op", "gte") not in ("eq", "gte", "gt", "lte", "lt"):
        errors.append(FieldError(f"{path}.count.op", "must be one of eq, gte, gt, lte, lt"))
        count = {"op": "gte", "value": 1}
    n = count.get("value", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        errors.append(FieldError(f"{path}.count.value", "must be a whole number, 0 or more"))
        n = 1
    for name in ("channel", "store_id"):
        if data.get(name) is not None and not isinstance(data[name], str):
            errors.append(FieldError(f"{path}.{name}", "must be a string"))
    return Did(
        event if isinstance(event, str) else "",
        data.get("channel"),
        data.get("store_id"),
        tuple(sorted(where.items())),
        within,
        count.get("op", "gte"),
        n,
    )


# -- streaming evaluation --------------------------------------------------------------


def day_of(ms: int, zone: ZoneInfo) -> int:
    """The calendar day (days since 1970-01-01) of an instant, in the workspace's zone."""
    local = datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone)
    return local.toordinal() - 719163  # date(1970, 1, 1).toordinal()


def did_matches(cond: Did, event: str | None, channel: str, store_id: str | None, props: dict[str, Any]) -> bool:
    if cond.event != event:
        return False
    if cond.channel is not None and cond.channel != channel:
        return False
    if cond.store_id is not None and cond.store_id != store_id:
        return False
    return all(props.get(k) == v for k, v in cond.where)


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "exists":
        return actual is not None
    if op == "not_exists":
        return actual is None
    if actual is None:
        return op == "neq"
    if op == "eq":
        return _text(actual) == _text(expected)
    if op == "neq":
        return _text(actual) != _text(expected)
    if op == "in":
        return _text(actual) in {_text(v) for v in expected}
    if op == "contains":
        return _text(expected) in _text(actual)
    number = _number(actual)
    if number is None:
        return False
    return {"gt": number > expected, "gte": number >= expected, "lt": number < expected, "lte": number <= expected}[op]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def count_in_window(buckets: dict[int, int] | None, within_days: int | None, today: int) -> int:
    if not buckets:
        return 0
    if within_days is None:
        return sum(n for day, n in buckets.items() if day <= today)
    first = today - within_days + 1
    return sum(n for day, n in buckets.items() if first <= day <= today)


def evaluate(rule: Rule, traits: dict[str, Any], counters: dict[str, dict[int, int]], today: int) -> bool:
    """Is a person with these traits and counters in the rule, on `today`?"""
    if isinstance(rule, TraitIs):
        return _compare(rule.op, traits.get(rule.trait), rule.value)
    if isinstance(rule, Did):
        n = count_in_window(counters.get(rule.key), rule.within_days, today)
        return {"eq": n == rule.count, "gte": n >= rule.count, "gt": n > rule.count,
                "lte": n <= rule.count, "lt": n < rule.count}[rule.op]  # fmt: skip
    if isinstance(rule, All):
        return all(evaluate(r, traits, counters, today) for r in rule.rules)
    if isinstance(rule, Any_):
        return any(evaluate(r, traits, counters, today) for r in rule.rules)
    return not evaluate(rule.rule, traits, counters, today)
