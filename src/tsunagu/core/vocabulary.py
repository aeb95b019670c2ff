"""What a workspace has seen: event names, their channels, stores and properties, traits.

A plain data object, filled by the analytics adapter (`tsunagu.sql.vocabulary` reads the
rows) and read by the rule checker (`tsunagu.core.rulecheck`) and the builder. Nothing
here does I/O: `add_counts`, `add_sample` and `add_traits` take rows.

Names are exact: every event name, channel and store id the events hold is counted.
Properties and values are a **sample** (the latest events of each name, `sampled` per
event), so what the checker says about them names how many it looked at.

Page and screen views are named as rules and user data name them: `$page`, `$screen`.

`nearest` finds the names closest to a misspelt one: the same name in another case or
width (`ＢＵＹ`, `Buy`), kana (`あうたー` → `アウター`), the names people give page views
(`page`, `pageview`, `ページビュー` → `$page`) and a few names of the same thing
(`purchase`, `Order Completed`, `購入` → `buy`), then `difflib`'s close matches
(`biy` → `buy`) and names that contain it.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import userdata
from .segments import VIEWS

__all__ = ["MAX_VALUES", "SAMPLE_PER_EVENT", "EventSeen", "Vocabulary", "fold", "nearest", "view_name"]

#: events of one name whose properties are read, at most
SAMPLE_PER_EVENT = 500
#: distinct string values kept per property or trait (more: it is not a list of choices)
MAX_VALUES = 50
#: property paths kept per event (a hostile sender could send a new key on every event)
MAX_PATHS = 2000
#: how deep a computed trait's property path is followed (`items.size.cm`)
MAX_PATH_DEPTH = 6

_TYPES = {"track": None, **{t: n for n, t in VIEWS.items()}}  # event type -> the name rules use (None: its own)
# What people call page and screen views (folded): `{"did": "page"}` means `$page`.
_VIEW_ALIASES = {
    "$page": ("page", "pages", "pageview", "pageviews", "pageviewed", "pv", "ページ", "ページビュー", "ページ閲覧"),
    "$screen": ("screen", "screens", "screenview", "screenviews", "screenviewed", "スクリーン", "画面", "画面表示"),
}  # fmt: skip
# Names of one thing (folded): the demo retailer's, Segment's e-commerce spec's, Japanese.
_SYNONYMS = (
    ("buy", "purchase", "purchased", "order", "ordercompleted", "checkout", "購入"),
    ("view", "productviewed", "itemview", "商品閲覧"),
    ("cart", "addtocart", "productadded", "カート", "カート追加"),
    ("checkin", "storevisit", "来店", "チェックイン"),
    ("favorite", "favourite", "wishlist", "productaddedtowishlist", "お気に入り"),
)
_HIRAGANA = {c: c + 0x60 for c in range(0x3041, 0x3097)}  # ぁ..ゖ -> ァ..ヶ
_SEPARATORS = re.compile(r"[\s_\-・]+")


def fold(name: str) -> str:
    """A name as people mean it: width, case, kana and separators ignored (`Ｐａｇｅ_View`: `pageview`)."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", name).casefold().translate(_HIRAGANA))


def view_name(name: str) -> str | None:
    """`$page` or `$screen` when `name` is what people call page or screen views (`page`, `pv`)."""
    folded = fold(name).lstrip("$")
    for view, aliases in _VIEW_ALIASES.items():
        if folded in aliases or folded == view[1:]:
            return view
    return None


def nearest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates closest to `name` (at most `n`), the closest first; `candidates` in the
    order to prefer on a tie (the most frequent first)."""
    options = [c for c in dict.fromkeys(candidates) if c != name]
    if not options or not name:
        return []
    by_fold: dict[str, list[str]] = {}
    for c in options:
        by_fold.setdefault(fold(c), []).append(c)
    key = fold(name)
    found: list[str] = list(by_fold.get(key, []))
    if found:  # the same name written another way: nothing else is as near
        return found[:n]
    view = view_name(name.split(".", 1)[0])
    if view is not None:
        wanted = ".".join([view, *name.split(".", 1)[1:]])
        found += [c for c in options if c == wanted]
    for group in _SYNONYMS:
        if key in group:
            found += [c for c in options if fold(c) in group]
    if found:  # what people call the same thing
        return list(dict.fromkeys(found))[:n]
    close = difflib.get_close_matches(key, list(by_fold), n=n, cutoff=0.6)
    if close:  # only the ones about as near as the nearest (`buy.revnue`: not `buy.currency`)
        best = difflib.SequenceMatcher(None, key, close[0]).ratio()
        for match in close:
            if difflib.SequenceMatcher(None, key, match).ratio() >= best - 0.1:
                found += by_fold[match]
    if len(key) >= 3:
        found += [c for c in options if key in fold(c) or (len(fold(c)) >= 3 and fold(c) in key)]
    return list(dict.fromkeys(found))[:n]


@dataclass
class EventSeen:
    """One event name: how often, where, and what its (sampled) properties were."""

    count: int = 0
    last_seq: int = 0  # the log record of the latest (where to look for a sample)
    channels: dict[str, int] = field(default_factory=dict)
    stores: dict[str, int] = field(default_factory=dict)
    sampled: int = 0  # events whose properties were read
    keys: dict[str, int] = field(default_factory=dict)  # top-level property -> sampled events holding it
    fields: set[str] = field(default_factory=set)  # user data fields: "buy.revenue", "buy.size.cm"
    paths: set[str] = field(default_factory=set)  # computed traits' paths, lists crossed: "items.category"
    values: dict[str, dict[str, int]] = field(default_factory=dict)  # top-level property -> string value -> n

    @property
    def complete(self) -> bool:
        """Were all its events' properties read (then an unseen property is certainly unseen)?"""
        return self.sampled >= self.count


@dataclass
class Vocabulary:
    """What the workspace has seen (`seq`: the analytics store's log seq it covers)."""

    events: dict[str, EventSeen] = field(default_factory=dict)  # "buy", "$page", "$screen"
    traits: dict[str, int] = field(default_factory=dict)  # trait -> people holding it
    trait_values: dict[str, dict[str, int]] = field(default_factory=dict)  # (sampled people) trait -> value -> n
    people_sampled: int = 0
    people: int = 0
    computed: set[str] = field(default_factory=set)
    segments: set[str] = field(default_factory=set)
    seq: int = 0

    # -- filling it from rows ------------------------------------------------------------

    def add_counts(self, rows: Iterable[tuple[str, str | None, str, str | None, int, int]]) -> None:
        """(type, event, channel, store id, events, latest seq) rows, added to what was counted;
        types other than track, page and screen are skipped."""
        for typ, event, channel, store, n, last in rows:
            name = _TYPES.get(typ, "") if typ != "track" else event
            if not name:
                continue
            seen = self.events.get(name)
            if seen is None:
                seen = self.events[name] = EventSeen()
            seen.count += n
            seen.last_seq = max(seen.last_seq, last)
            seen.channels[channel] = seen.channels.get(channel, 0) + n
            if store is not None:
                seen.stores[store] = seen.stores.get(store, 0) + n

    def add_sample(self, typ: str, event: str | None, props: Any) -> None:
        """One event's properties (decoded JSON) into its name's sample."""
        name = _TYPES.get(typ, "") if typ != "track" else event
        if not name:
            return
        seen = self.events.get(name)
        if seen is None:
            seen = self.events[name] = EventSeen()
        seen.sampled += 1
        if not isinstance(props, dict):
            return
        for key, value in props.items():
            seen.keys[key] = seen.keys.get(key, 0) + 1
            if isinstance(value, str):
                _count_value(seen.values, key, value)
        if len(seen.paths) < MAX_PATHS:
            out: list[tuple[str, Any]] = []
            userdata.fields_of(name, props, out)
            seen.fields.update(f for f, _ in out)
            _paths("", props, seen.paths, 1)

    def add_traits(self, rows: Iterable[tuple[str, int]], people: int) -> None:
        """(trait, people holding it) rows for all `people`; they replace what was there."""
        self.traits = dict(rows)
        self.people = people

    def add_trait_sample(self, traits: Any) -> None:
        """One person's traits (decoded JSON) into the sample of trait values."""
        self.people_sampled += 1
        if isinstance(traits, dict):
            for key, value in traits.items():
                if isinstance(value, str):
                    _count_value(self.trait_values, key, value)

    # -- reading it ----------------------------------------------------------------------

    @property
    def channels(self) -> dict[str, int]:
        return _summed(e.channels for e in self.events.values())

    @property
    def stores(self) -> dict[str, int]:
        return _summed(e.stores for e in self.events.values())

    def event_names(self) -> list[str]:
        """Every event name, the most frequent first."""
        return sorted(self.events, key=lambda n: (-self.events[n].count, n))

    def fields(self) -> list[str]:
        """Every user data field: the events themselves, `$sessions`, then their properties."""
        names = self.event_names()
        out = [*names, *(["$sessions"] if names else [])]
        for name in names:
            out += sorted(self.events[name].fields)
        return out

    def with_definitions(self, computed: Iterable[str], segments: Iterable[str]) -> Vocabulary:
        """The same vocabulary naming these computed traits and segments (a shallow copy)."""
        copy = Vocabulary(self.events, self.traits, self.trait_values, self.people_sampled, self.people,
                          set(computed), set(segments), self.seq)  # fmt: skip
        return copy

    def to_dict(self) -> dict[str, Any]:
        """What the builder offers: names with counts, the most frequent first."""
        return {
            "events": [{"name": n, "count": self.events[n].count} for n in self.event_names()],
            "fields": self.fields(),
            "traits": sorted(self.traits, key=lambda t: (-self.traits[t], t)),
            "channels": _by_count(self.channels),
            "stores": _by_count(self.stores),
            "computed": sorted(self.computed),
            "segments": sorted(self.segments),
        }


def _count_value(values: dict[str, dict[str, int]], key: str, value: str) -> None:
    seen = values.get(key)
    if seen is None:
        if len(values) >= MAX_PATHS:
            return
        seen = values[key] = {}
    if value in seen or len(seen) < MAX_VALUES + 1:  # one past the cap: "too many to be choices"
        seen[value] = seen.get(value, 0) + 1


def _paths(prefix: str, value: Any, out: set[str], depth: int) -> None:
    """Every path a computed trait can aggregate (`values_at`): objects followed, lists crossed."""
    if isinstance(value, list):
        for item in value[:20]:
            _paths(prefix, item, out, depth)
    elif isinstance(value, dict):
        if depth > MAX_PATH_DEPTH:
            return
        for key, inner in value.items():
            _paths(f"{prefix}.{key}" if prefix else key, inner, out, depth + 1)
    elif prefix and value is not None:
        out.add(prefix)


def _summed(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in parts:
        for k, n in part.items():
            out[k] = out.get(k, 0) + n
    return out


def _by_count(counts: Mapping[str, int]) -> list[str]:
    return sorted(counts, key=lambda k: (-counts[k], k))
