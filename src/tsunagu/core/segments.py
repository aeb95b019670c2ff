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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from . import storable, userdata
from .errors import FieldError, InvalidInput
from .userdata import STATS, WINDOWS

__all__ = [
    "COMPARISONS",
    "VIEWS",
    "All",
    "Any_",
    "ComputedIs",
    "DataIs",
    "Did",
    "Facts",
    "FirstDid",
    "InSegment",
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
#: how deep all/any/not may nest: evaluation, the SQL compiler and its printer recurse per level
MAX_RULE_DEPTH = 32
#: the names rules give page and screen views (`{"did": "$page"}`), as user data names them,
#: and the event type each is; any other name is a track event's
VIEWS = {"$page": "page", "$screen": "screen"}


@dataclass(frozen=True)
class TraitIs:
    trait: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Did:
    """Did `event` (with filters) `count` times within the last `within_days` days.

    `event` is a track event's name, or `$page` / `$screen` for page and screen views."""

    event: str
    channel: str | None = None
    store_id: str | None = None
    where: tuple[tuple[str, Any], ...] = ()  # property equality filters
    within_days: int | None = None  # None: all time (or since `since`)
    op: str = "gte"
    count: int = 1
    since: int | None = None  # a calendar day (days since 1970-01-01): from that day on

    @cached_property  # read on every evaluation: computed once per condition
    def key(self) -> str:
        """The counter this condition reads: one per (event, filters), shared by rules."""
        return json.dumps([self.event, self.channel, self.store_id, list(self.where)], ensure_ascii=False)


@dataclass(frozen=True)
class FirstDid:
    """The first time the person did `event` (with filters) was within the last `within_days` days."""

    event: str
    channel: str | None = None
    store_id: str | None = None
    where: tuple[tuple[str, Any], ...] = ()
    within_days: int = 1

    @cached_property
    def key(self) -> str:
        return self.as_did().key  # the counter it reads is the plain did's

    def as_did(self) -> Did:
        return Did(self.event, self.channel, self.store_id, self.where)


@dataclass(frozen=True)
class DataIs:
    """A statistic of a user data field in a window, compared (`buy.price` avg over all time)."""

    field: str  # "buy" (the event itself), "buy.price", "$page.path", "$sessions"
    stat: str
    window: str
    op: str
    value: Any = None

    @property
    def event(self) -> str:
        return self.field.split(".", 1)[0]


@dataclass(frozen=True)
class ComputedIs:
    """A declared computed trait compared."""

    name: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class InSegment:
    """Membership of another segment."""

    name: str


@dataclass(frozen=True)
class All:
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Any_:
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Not:
    rule: Rule


Rule = TraitIs | Did | FirstDid | DataIs | ComputedIs | InSegment | All | Any_ | Not


@dataclass(eq=False)  # compared by identity: the engine keeps one object per segment
class Segment:
    name: str
    rule: Rule
    counters: list[Did] = field(default_factory=list)
    traits: set[str] = field(default_factory=set)
    data: set[str] = field(default_factory=set)  # user data fields read
    computed: set[str] = field(default_factory=set)  # computed traits read
    segments: set[str] = field(default_factory=set)  # other segments read
    #: does membership change as time passes, without an event? (windows, "first did")
    timed: bool = False

    def __post_init__(self) -> None:
        _collect(self.rule, self)
        self.check = compile_rule(self.rule)


def _collect(rule: Rule, seg: Segment) -> None:
    if isinstance(rule, Did):
        seg.counters.append(rule)
        seg.timed |= rule.within_days is not None
    elif isinstance(rule, FirstDid):
        seg.counters.append(rule.as_did())
        seg.timed = True
    elif isinstance(rule, DataIs):
        seg.data.add(rule.field)
        seg.timed |= rule.window not in ("all_time", "this_session", "previous_session")
    elif isinstance(rule, ComputedIs):
        seg.computed.add(rule.name)
    elif isinstance(rule, InSegment):
        seg.segments.add(rule.name)
    elif isinstance(rule, TraitIs):
        seg.traits.add(rule.trait)
    elif isinstance(rule, (All, Any_)):
        for r in rule.rules:
            _collect(r, seg)
    elif isinstance(rule, Not):
        _collect(rule.rule, seg)


# -- parsing ---------------------------------------------------------------------------

_NODES = ("all", "any", "not", "trait", "did", "first_did", "data", "last", "computed", "segment")
_DID_FIELDS = {"did", "channel", "store_id", "where", "within_days", "since", "count"}
_FIRST_SINCE = (date(1900, 1, 1) - date(1970, 1, 1)).days


def parse_rule(data: Any, path: str = "rule") -> Rule:
    """Parse and validate a rule; every problem is reported with its exact path.

    Total: any JSON value gives a rule or `InvalidInput`, never another exception."""
    errors = storable.problems(data, path)
    rule = _parse(data, path, errors) if not errors else None
    if errors:
        raise InvalidInput.for_fields(errors)
    assert rule is not None
    return rule


def _one_of(data: dict[str, Any], key: str, options: tuple[str, ...], default: str, path: str,
            errors: list[FieldError]) -> str:  # fmt: skip
    """`data[key]`, one of `options` (`default` when absent); an error, and `default`, otherwise."""
    value = data.get(key, default)
    if not isinstance(value, str) or value not in options:
        errors.append(FieldError(f"{path}.{key}", f"{value!r} is not one of {', '.join(options)}"))
        return default
    return value


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _comparison(data: dict[str, Any], path: str, errors: list[FieldError]) -> tuple[str, Any]:
    op = _one_of(data, "op", COMPARISONS, "eq", path, errors)
    if "op" in data and op != data["op"]:
        return op, None  # the value's checks depend on the op
    value = data.get("value")
    if op in ("gt", "gte", "lt", "lte") and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        errors.append(FieldError(f"{path}.value", f"must be a number for {op}"))
    if op == "in" and not isinstance(value, list):
        errors.append(FieldError(f"{path}.value", "must be a list for in"))
    if op in ("eq", "neq", "contains") and not _plain(value):
        errors.append(FieldError(f"{path}.value", f"must be a string, number or boolean for {op}"))
    return op, tuple(value) if isinstance(value, list) else value


def _name(data: dict[str, Any], key: str, path: str, errors: list[FieldError], what: str) -> str:
    name = data.get(key)
    if not isinstance(name, str) or not name:
        errors.append(FieldError(f"{path}.{key}", f"must be {what}"))
        return ""
    return name


def _field_path(data: dict[str, Any], key: str, path: str, errors: list[FieldError], what: str) -> str:
    """A dotted path (`buy.items.price`): a name whose parts are not empty."""
    name = _name(data, key, path, errors, what)
    if name and "" in name.split("."):
        errors.append(FieldError(f"{path}.{key}", f"must be {what}, with no empty part between dots"))
        return ""
    return name


def _unknown(data: dict[str, Any], allowed: set[str], path: str, errors: list[FieldError], what: str) -> None:
    unknown = set(data) - allowed
    if unknown:
        errors.append(FieldError(f"{path}.{sorted(unknown)[0]}", f"is not a field of {what}"))


def _filters(data: dict[str, Any], path: str, errors: list[FieldError]) -> tuple[tuple[str, Any], ...]:
    where = data.get("where", {})
    if not isinstance(where, dict) or not all(_plain(v) for v in where.values()):
        errors.append(FieldError(f"{path}.where", "must map property names to plain values"))
        where = {}
    if "" in where:
        errors.append(FieldError(f"{path}.where", "a property name may not be empty"))
        where = {}
    for name in ("channel", "store_id"):
        if data.get(name) is not None and not isinstance(data[name], str):
            errors.append(FieldError(f"{path}.{name}", "must be a string"))
    return tuple(sorted(where.items()))


def _within(data: dict[str, Any], path: str, errors: list[FieldError], required: bool = False) -> int | None:
    within = data.get("within_days")
    if within is None and not required:
        return None
    if not isinstance(within, int) or isinstance(within, bool) or not 1 <= within <= MAX_WINDOW_DAYS:
        errors.append(FieldError(f"{path}.within_days", f"must be a whole number of days, 1 to {MAX_WINDOW_DAYS}"))
        return 1
    return within


def _parse(data: Any, path: str, errors: list[FieldError], depth: int = 0) -> Rule | None:
    if not isinstance(data, dict) or len([k for k in _NODES if k in data]) != 1:
        errors.append(FieldError(path, f"must be an object with exactly one of {', '.join(_NODES)}"))
        return None
    if ("all" in data or "any" in data or "not" in data) and depth >= MAX_RULE_DEPTH:
        errors.append(FieldError(path, f"nests all, any and not more than {MAX_RULE_DEPTH} levels deep"))
        return None
    if "all" in data or "any" in data:
        key = "all" if "all" in data else "any"
        items = data[key]
        if not isinstance(items, list) or not items:
            errors.append(FieldError(f"{path}.{key}", "must be a non-empty list of rules"))
            return None
        parsed = [_parse(item, f"{path}.{key}[{i}]", errors, depth + 1) for i, item in enumerate(items)]
        rules = tuple(r for r in parsed if r is not None)
        return All(rules) if key == "all" else Any_(rules)
    if "not" in data:
        inner = _parse(data["not"], f"{path}.not", errors, depth + 1)
        return Not(inner) if inner is not None else None
    if "trait" in data:
        name = _name(data, "trait", path, errors, "a trait name")
        op, value = _comparison(data, path, errors)
        return TraitIs(name, op, value)
    if "computed" in data:
        _unknown(data, {"computed", "op", "value"}, path, errors, "a computed condition")
        name = _name(data, "computed", path, errors, "a computed trait's name")
        op, value = _comparison(data, path, errors)
        return ComputedIs(name, op, value)
    if "segment" in data:
        _unknown(data, {"segment"}, path, errors, "a segment condition")
        return InSegment(_name(data, "segment", path, errors, "a segment's name"))
    if "data" in data or "last" in data:
        return _parse_data(data, path, errors)
    if "first_did" in data:
        _unknown(
            data, {"first_did", "channel", "store_id", "where", "within_days"}, path, errors, "a first_did condition"
        )
        event = _name(data, "first_did", path, errors, "an event name")
        where = _filters(data, path, errors)
        within = _within(data, path, errors, required=True)
        return FirstDid(event, data.get("channel"), data.get("store_id"), where, within or 1)
    # did
    event = _name(data, "did", path, errors, "an event name")
    _unknown(data, _DID_FIELDS, path, errors, "a did condition")
    within = _within(data, path, errors)
    since = data.get("since")
    since_day = None
    if since is not None:
        if within is not None:
            errors.append(FieldError(f"{path}.since", "cannot be used with within_days"))
        try:
            since_day = (date.fromisoformat(since) - date(1970, 1, 1)).days if isinstance(since, str) else None
        except ValueError:
            since_day = None
        if since_day is None:
            errors.append(FieldError(f"{path}.since", "must be a date, YYYY-MM-DD"))
        elif since_day < _FIRST_SINCE:  # year 1 in a zone east of UTC starts in year 0: no datetime holds it
            errors.append(FieldError(f"{path}.since", "must be a date from 1900-01-01 on"))
            since_day = None
    where = _filters(data, path, errors)
    count = data.get("count", {"op": "gte", "value": 1})
    if not isinstance(count, dict) or count.get("op", "gte") not in ("eq", "gte", "gt", "lte", "lt"):
        errors.append(FieldError(f"{path}.count.op", "must be one of eq, gte, gt, lte, lt"))
        count = {"op": "gte", "value": 1}
    n = count.get("value", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        errors.append(FieldError(f"{path}.count.value", "must be a whole number, 0 or more"))
        n = 1
    return Did(event, data.get("channel"), data.get("store_id"), where, within, count.get("op", "gte"), n, since_day)


def _parse_data(data: dict[str, Any], path: str, errors: list[FieldError]) -> DataIs:
    if "last" in data:
        # sugar: a property of the last such event
        _unknown(data, {"last", "property", "op", "value"}, path, errors, "a last condition")
        event = _field_path(data, "last", path, errors, "an event name")  # the first part of a field
        prop = _field_path(data, "property", path, errors, "a property name")
        op, value = _comparison(data, path, errors)
        return DataIs(f"{event}.{prop}", "last", "all_time", op, value)
    _unknown(data, {"data", "stat", "window", "op", "value"}, path, errors, "a data condition")
    name = _field_path(data, "data", path, errors, "a user data field, such as buy.revenue")
    stat = _one_of(data, "stat", STATS, "count", path, errors)
    window = _one_of(data, "window", WINDOWS, "all_time", path, errors)
    op, value = _comparison(data, path, errors)
    return DataIs(name, stat, window, op, value)


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


def count_in_window(buckets: dict[int, int] | None, first: int | None, today: int) -> int:
    if not buckets:
        return 0
    if first is None:
        return sum(n for day, n in buckets.items() if day <= today)
    return sum(n for day, n in buckets.items() if first <= day <= today)


def did_first_day(cond: Did, today: int) -> int | None:
    if cond.within_days is not None:
        return today - cond.within_days + 1
    return cond.since


class Facts:
    """What a rule reads about one person. The engine fills it; tests can too."""

    __slots__ = ("computed", "counters", "data", "segments", "session", "traits")

    def __init__(
        self,
        traits: dict[str, Any],
        counters: dict[str, dict[int, int]],
        data: dict[str, Any] | None = None,
        session: int = 0,
        computed: Callable[[str], Any] | None = None,
        segments: Iterable[str] = (),
    ) -> None:
        self.traits = traits
        self.counters = counters
        self.data = data or {}
        self.session = session
        self.computed = computed or (lambda name: None)
        self.segments = set(segments)


_COUNT_OPS: dict[str, Callable[[int, int], bool]] = {
    "eq": lambda a, b: a == b, "gte": lambda a, b: a >= b, "gt": lambda a, b: a > b,
    "lte": lambda a, b: a <= b, "lt": lambda a, b: a < b,
}  # fmt: skip


def evaluate(rule: Rule, facts: Facts, today: int) -> bool:
    """Is a person with these facts in the rule, on `today`?"""
    if isinstance(rule, TraitIs):
        return _compare(rule.op, facts.traits.get(rule.trait), rule.value)
    if isinstance(rule, Did):
        n = count_in_window(facts.counters.get(rule.key), did_first_day(rule, today), today)
        return _COUNT_OPS[rule.op](n, rule.count)
    if isinstance(rule, DataIs):
        return _compare(rule.op, userdata.read(facts.data.get(rule.field), rule.stat, rule.window, today,
                                               facts.session), rule.value)  # fmt: skip
    if isinstance(rule, ComputedIs):
        return _compare(rule.op, facts.computed(rule.name), rule.value)
    if isinstance(rule, InSegment):
        return rule.name in facts.segments
    if isinstance(rule, FirstDid):
        days = [d for d, n in (facts.counters.get(rule.key) or {}).items() if n and d <= today]
        return bool(days) and min(days) >= today - rule.within_days + 1
    if isinstance(rule, All):
        return all(evaluate(r, facts, today) for r in rule.rules)
    if isinstance(rule, Any_):
        return any(evaluate(r, facts, today) for r in rule.rules)
    return not evaluate(rule.rule, facts, today)


# -- compiled evaluation (the engine's hot path) ----------------------------------------

Check = Callable[[Facts, int], bool]

_NUMERIC: dict[str, Callable[[float, Any], bool]] = {
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
}  # fmt: skip


def comparator(op: str, expected: Any) -> Callable[[Any], bool]:
    """`_compare(op, actual, expected)` with the expected side prepared once."""
    if op == "exists":
        return lambda a: a is not None
    if op == "not_exists":
        return lambda a: a is None
    if op in ("eq", "neq", "contains"):
        e = _text(expected)
        if op == "eq":
            return lambda a: a is not None and (a if type(a) is str else _text(a)) == e
        if op == "neq":
            return lambda a: a is None or (a if type(a) is str else _text(a)) != e
        return lambda a: a is not None and e in (a if type(a) is str else _text(a))
    if op == "in":
        es = frozenset(_text(v) for v in expected)
        return lambda a: a is not None and (a if type(a) is str else _text(a)) in es
    cmp = _NUMERIC[op]

    def numeric(a: Any) -> bool:
        if a is None:
            return False
        n = _number(a)
        return n is not None and cmp(n, expected)

    return numeric


def compile_rule(rule: Rule) -> Check:
    """The rule as one closure per node: `evaluate` without the per-node dispatch."""
    if isinstance(rule, TraitIs):
        trait, c = rule.trait, comparator(rule.op, rule.value)
        return lambda f, today: c(f.traits.get(trait))
    if isinstance(rule, Did):
        key, within, since, want, op = rule.key, rule.within_days, rule.since, rule.count, _COUNT_OPS[rule.op]

        def did(f: Facts, today: int) -> bool:
            buckets = f.counters.get(key)
            if not buckets:
                return op(0, want)
            first = today - within + 1 if within is not None else since
            return op(count_in_window(buckets, first, today), want)

        return did
    if isinstance(rule, DataIs):
        field_, stat, window, c = rule.field, rule.stat, rule.window, comparator(rule.op, rule.value)
        return lambda f, today: c(userdata.read(f.data.get(field_), stat, window, today, f.session))
    if isinstance(rule, ComputedIs):
        name, c = rule.name, comparator(rule.op, rule.value)
        return lambda f, today: c(f.computed(name))
    if isinstance(rule, InSegment):
        segment = rule.name
        return lambda f, today: segment in f.segments
    if isinstance(rule, FirstDid):
        return lambda f, today: evaluate(rule, f, today)
    if isinstance(rule, Not):
        inner = compile_rule(rule.rule)
        return lambda f, today: not inner(f, today)
    parts = tuple(compile_rule(r) for r in rule.rules)
    if isinstance(rule, All):

        def all_(f: Facts, today: int) -> bool:
            for part in parts:  # noqa: SIM110  (a loop: no generator on the hot path)
                if not part(f, today):
                    return False
            return True

        return all_

    def any_(f: Facts, today: int) -> bool:
        for part in parts:  # noqa: SIM110
            if part(f, today):
                return True
        return False

    return any_
