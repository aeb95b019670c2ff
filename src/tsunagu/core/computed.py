"""Computed traits: declared aggregates kept current on every event.

Two kinds (docs/segments.md has the language):

* an **aggregate** over an event filter (event name, channel, store, property values)
  in a window: `count`, `sum`, `min`, `max`, `avg`, `first`, `last`, `most_frequent`,
  `distinct_count` of a property, or `days_since_first` / `days_since_last`;

      {"name": "store_purchase_amount", "event": "buy", "channel": "store",
       "agg": "sum", "property": "revenue", "window": "all_time"}

* **cases**: the first rule that holds gives the value (the same rule language as
  segments), e.g. the cross-channel class.

An aggregate is kept like user data (`tsunagu.core.userdata`): day buckets summed on
read, so an event costs one bucket update and any window reads a few buckets. A property
path may cross a list (`items.category`: every item's category).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from . import storable, userdata
from .errors import FieldError, InvalidInput
from .segments import (
    MAX_WINDOW_DAYS,
    Check,
    ComputedIs,
    Did,
    InSegment,
    Not,
    Rule,
    Segment,
    _filters,
    _one_of,
    _parse,
    compile_rule,
    did_matches,
)

__all__ = [
    "AGGS",
    "COLUMNS",
    "COMPUTED_WINDOWS",
    "RETAIL",
    "Aggregate",
    "Cases",
    "ComputedTrait",
    "aggregate_value",
    "parse_computed",
    "values_at",
]

AGGS = (
    "count", "sum", "min", "max", "avg", "first", "last", "most_frequent", "distinct_count",
    "days_since_first", "days_since_last",
)  # fmt: skip
_NEEDS_PROPERTY = {"sum", "min", "max", "avg", "first", "last", "most_frequent", "distinct_count"}
#: event columns a property may name
COLUMNS = ("$channel", "$store_id")
COMPUTED_WINDOWS = tuple(w for w in userdata.WINDOWS if "session" not in w)


@dataclass(frozen=True)
class Aggregate:
    name: str
    event: str  # "*": any track event
    agg: str
    prop: str | None = None  # "property" in the definition
    channel: str | None = None
    store_id: str | None = None
    where: tuple[tuple[str, Any], ...] = ()
    window: str = "all_time"
    within_days: int | None = None  # instead of a named window
    description: str = ""

    @property
    def keep_days(self) -> int:
        return max(userdata.KEEP_DAYS, (self.within_days or 0) + 1)

    def matches(self, event: str | None, channel: str, store_id: str | None, props: dict[str, Any]) -> bool:
        if self.channel is not None and channel not in self.channels:
            return False
        name = event if self.event == "*" else self.event
        return did_matches(Did(name, None, self.store_id, self.where), event, channel, store_id, props)

    @property
    def channels(self) -> tuple[str, ...]:
        """`channel` may name several, separated by commas ("web,app")."""
        return tuple(self.channel.split(",")) if self.channel else ()

    def first_day(self, today: int) -> tuple[int | None, int]:
        if self.within_days is not None:
            return today - self.within_days + 1, today
        return userdata.window_days(self.window, today)

    @property
    def timed(self) -> bool:
        return self.window != "all_time" or self.within_days is not None or self.agg.startswith("days_since")


@dataclass(frozen=True)
class Cases:
    name: str
    cases: tuple[tuple[Rule, Any], ...]
    default: Any = None
    description: str = ""

    @cached_property
    def checks(self) -> tuple[tuple[Check, Any], ...]:
        """The cases compiled (segments.compile_rule), with their values."""
        return tuple((compile_rule(rule), value) for rule, value in self.cases)

    def reads(self) -> Segment:
        """The conditions its rules read (as a segment would)."""
        from .segments import All

        return Segment(self.name, All(tuple(rule for rule, _ in self.cases)))


ComputedTrait = Aggregate | Cases


def parse_computed(data: Any, path: str = "computed_trait") -> ComputedTrait:
    """Parse and validate a computed trait; every problem is reported with its exact path.

    Total: any JSON value gives a computed trait or `InvalidInput`, never another exception."""
    errors = storable.problems(data, path)
    out = _parse_computed(data, path, errors) if not errors else None
    if errors:
        raise InvalidInput.for_fields(errors)
    assert out is not None
    return out


def _parse_computed(data: Any, path: str, errors: list[FieldError]) -> ComputedTrait | None:
    if not isinstance(data, dict):
        errors.append(FieldError(path, "must be an object"))
        return None
    name = data.get("name")
    if not isinstance(name, str) or not name:
        errors.append(FieldError(f"{path}.name", "must be a name"))
        name = ""
    description = data.get("description", "")
    if not isinstance(description, str):
        errors.append(FieldError(f"{path}.description", "must be a string"))
        description = ""
    if "cases" in data:
        unknown = set(data) - {"name", "cases", "else", "description"}
        if unknown:
            errors.append(FieldError(f"{path}.{sorted(unknown)[0]}", "is not a field of a cases trait"))
        cases = data["cases"]
        if not isinstance(cases, list) or not cases:
            errors.append(FieldError(f"{path}.cases", "must be a non-empty list of {when, value}"))
            return None
        parsed = []
        for i, case in enumerate(cases):
            p = f"{path}.cases[{i}]"
            if not isinstance(case, dict) or set(case) != {"when", "value"}:
                errors.append(FieldError(p, "must be an object with when (a rule) and value"))
                continue
            rule = _parse(case["when"], f"{p}.when", errors)
            if rule is not None:
                _plain(case["value"], f"{p}.value", errors)
                parsed.append((rule, case["value"]))
        _plain(data.get("else"), f"{path}.else", errors)
        if any(_reads_definitions(rule) for rule, _ in parsed):
            errors.append(FieldError(f"{path}.cases", "a case may not read segments or other computed traits"))
        # Built only when valid: `Cases` compiles its rules, which an invalid rule would break.
        return None if errors else Cases(name, tuple(parsed), data.get("else"), description)
    unknown = set(data) - {"name", "event", "agg", "property", "channel", "store_id", "where", "window",
                           "within_days", "description"}  # fmt: skip
    if unknown:
        errors.append(FieldError(f"{path}.{sorted(unknown)[0]}", "is not a field of a computed trait"))
    event = data.get("event")
    if not isinstance(event, str) or not event:
        errors.append(FieldError(f"{path}.event", "must be an event name"))
        event = ""
    if "agg" not in data:
        errors.append(FieldError(f"{path}.agg", f"is needed: one of {', '.join(AGGS)}"))
    agg = _one_of(data, "agg", AGGS, "count", path, errors)
    prop = data.get("property")
    if agg in _NEEDS_PROPERTY and (not isinstance(prop, str) or not prop):
        errors.append(FieldError(f"{path}.property", f"is needed for {agg}: the property to aggregate"))
    elif prop is not None and not isinstance(prop, str):
        errors.append(FieldError(f"{path}.property", "must be a property path such as revenue or items.category"))
        prop = None
    elif prop is not None and agg != "count" and "" in prop.split("."):  # count reads no property
        errors.append(FieldError(f"{path}.property", "must be a property path with no empty part between dots"))
        prop = None
    where = _filters(data, path, errors)
    window = data.get("window", "all_time")
    within = data.get("within_days")
    if within is not None:
        if "window" in data:
            errors.append(FieldError(f"{path}.within_days", "cannot be used with window"))
        if not isinstance(within, int) or isinstance(within, bool) or not 1 <= within <= MAX_WINDOW_DAYS:
            errors.append(FieldError(f"{path}.within_days", f"must be a whole number of days, 1 to {MAX_WINDOW_DAYS}"))
            within = None
    else:
        window = _one_of(data, "window", COMPUTED_WINDOWS, "all_time", path, errors)
    return Aggregate(name, event, agg, prop if agg != "count" else None, data.get("channel"),
                     data.get("store_id"), where, window, within, description)  # fmt: skip


def _reads_definitions(rule: Rule) -> bool:
    """Does the rule read a segment or a computed trait?"""
    if isinstance(rule, (InSegment, ComputedIs)):
        return True
    if isinstance(rule, Not):
        return _reads_definitions(rule.rule)
    return any(_reads_definitions(r) for r in getattr(rule, "rules", ()))


def _plain(value: Any, path: str, errors: list[FieldError]) -> None:
    if value is not None and not isinstance(value, (str, int, float, bool)):
        errors.append(FieldError(path, "must be a string, number, boolean or null"))


def values_at(path: str, channel: str, store_id: str | None, props: dict[str, Any]) -> list[Any]:
    """The values a property path names in one event (a list crossed gives one per item)."""
    if path == "$channel":
        return [channel]
    if path == "$store_id":
        return [] if store_id is None else [store_id]
    current: list[Any] = [props]
    for part in path.split("."):
        nxt: list[Any] = []
        for node in current:
            if isinstance(node, dict):
                v = node.get(part)
                if isinstance(v, list):
                    nxt.extend(v)
                elif v is not None:
                    nxt.append(v)
        current = nxt
    return [v for v in current if not isinstance(v, (dict, list))]


def aggregate_value(trait: Aggregate, summary: userdata.Summary | None, today: int, day_of_ms: Any) -> Any:
    """The trait's value on `today` from its summary (`day_of_ms`: ms -> calendar day)."""
    first, last = trait.first_day(today)
    if trait.agg == "days_since_first":
        ts = userdata.read_days(summary, first, last, "first_ts")
        return None if ts is None else today - day_of_ms(ts)
    if trait.agg == "days_since_last":
        ts = userdata.read_days(summary, first, last, "last_ts")
        return None if ts is None else today - day_of_ms(ts)
    return userdata.read_days(summary, first, last, trait.agg)


def _buy(name: str, agg: str, channel: str | None = None, prop: str | None = "revenue", **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "event": "buy", "agg": agg}
    if prop and agg != "count" and not agg.startswith("days_since"):
        d["property"] = prop
    if channel:
        d["channel"] = channel
    return d | kw


_ONLINE = {"any": [{"did": "buy", "channel": "web"}, {"did": "buy", "channel": "app"}]}
_STORE_BUYER = {"did": "buy", "channel": "store"}
_BROWSES = {"any": [{"did": "view", "channel": "web"}, {"did": "view", "channel": "app"}]}
_VISITS = {"any": [{"did": "checkin"}, {"did": "buy", "channel": "store"}]}

#: the computed traits a new workspace starts with (a retailer's usual set)
RETAIL: list[dict[str, Any]] = [
    _buy("online_purchase_count", "count", "web,app", description="オンライン購入回数（Web・アプリ）"),
    _buy("store_purchase_count", "count", "store", description="店舗購入回数（レシート数）"),
    _buy("online_purchase_amount", "sum", "web,app", description="オンライン購入金額（Web・アプリ）"),
    _buy("store_purchase_amount", "sum", "store", description="店舗購入金額"),
    _buy("ltv", "sum", description="累計購入金額（全チャネル、LTV）"),
    _buy("purchase_count", "count", description="購入回数（全チャネル）"),
    _buy("aov", "avg", description="平均購入単価（AOV）"),
    _buy("days_since_last_purchase", "days_since_last", description="最終購入からの日数"),
    {"name": "last_store", "event": "*", "channel": "store", "agg": "last", "property": "$store_id",
     "description": "最後に来店した店舗（チェックインまたは購入）"},
    {"name": "store_visits", "event": "checkin", "agg": "count", "description": "来店回数（チェックイン）"},
    {"name": "store_visits_90d", "event": "checkin", "agg": "count", "within_days": 90,
     "description": "直近90日の来店回数"},
    {"name": "favourite_category", "event": "view", "agg": "most_frequent", "property": "category",
     "description": "最もよく見るカテゴリ"},
    {"name": "favourite_brand", "event": "view", "agg": "most_frequent", "property": "brand",
     "description": "最もよく見るブランド"},
    {"name": "favourite_category_bought", "event": "buy", "agg": "most_frequent", "property": "items.category",
     "description": "最もよく買うカテゴリ"},
    {
        "name": "cross_channel_class",
        "description": "チャネルの使い方（店舗・Web・アプリ）",
        "cases": [
            {"when": {"all": [_STORE_BUYER, _ONLINE]}, "value": "omnichannel buyer"},
            {"when": {"all": [_STORE_BUYER, _BROWSES]}, "value": "store buyer who browses the web"},
            {"when": _STORE_BUYER, "value": "store only"},
            {"when": {"all": [_ONLINE, _VISITS]}, "value": "web buyer who visits stores"},
            {"when": _ONLINE, "value": "web only"},
            {"when": _BROWSES, "value": "browser, no purchase"},
        ],
        "else": "unknown",
    },
]  # fmt: skip
