"""Warnings for a rule or definition that names what the workspace has never seen.

`{"did": "page"}` is a valid rule that counts nobody: page views are `$page`, and no
track event is called `page`. The parser cannot know that; the workspace's vocabulary
(`tsunagu.core.vocabulary`) does. `check_rule` and `check_computed` (through them each
definition kind's `warnings`, `core.kinds`) take a valid rule or definition (already
parsed: they never raise) and that vocabulary, and return one `RuleWarning` per name
nothing in the workspace carries, with the exact path and the nearest names it has seen:

    {"path": "rule.all[1].did", "kind": "unknown_event", "name": "page", "event": null,
     "suggestions": ["$page"], "message": "no event 'page' has been seen ...; did you mean '$page' ..."}

Warnings never block a save: a rule may well name an event the site starts sending
tomorrow. Kinds (the UI words each in its language): `unknown_event`, `unknown_channel`,
`unknown_store`, `unknown_property` (a `where` key, a computed trait's property, a `last`
node's property), `unknown_value` (a `where` or trait value where the workspace's values
look like a list of choices), `unknown_field` (a user data field), `unknown_trait`,
`unknown_computed`, `unknown_segment`. What is said about properties and values comes
from a sample of events (`EventSeen.sampled`), and the message says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .computed import COLUMNS
from .segments import VIEWS
from .vocabulary import MAX_VALUES, EventSeen, Vocabulary, nearest

__all__ = ["KINDS", "RuleWarning", "check_computed", "check_rule", "indexed"]

KINDS = (
    "unknown_event", "unknown_channel", "unknown_store", "unknown_property", "unknown_value", "unknown_field",
    "unknown_trait", "unknown_computed", "unknown_segment",
)  # fmt: skip
#: a property or trait's values are a list of choices when this few distinct ones were seen
#: this many times over (a name, an id or a price never is)
_CHOICES_MAX = 20
_CHOICES_REPEAT = 3
_COMPARED_AS_TEXT = ("eq", "neq", "in")


@dataclass(frozen=True)
class RuleWarning:
    path: str  # rule.all[1].did, rule.all[1].where.colour, definitions[2].rule.did
    kind: str  # one of KINDS
    name: str  # the name (or value) nothing in the workspace carries
    message: str  # in English; the UI words each kind in its language
    suggestions: list[str] = field(default_factory=list)  # the nearest names seen, the closest first
    event: str | None = None  # the event a channel, store, property or value was looked for on
    index: int | None = None  # the definition's position in an apply

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "name": self.name, "event": self.event,
                "suggestions": self.suggestions, "message": self.message, "index": self.index}  # fmt: skip


def _did_you_mean(suggestions: list[str]) -> str:
    if not suggestions:
        return ""
    named = ", ".join(repr(s) + (f" ({VIEWS[s]} views)" if s in VIEWS else "") for s in suggestions)
    return f"; did you mean {named}?"


def _sample_note(seen: EventSeen) -> str:
    return "" if seen.complete else f" (of the latest {seen.sampled:,} looked at)"


class _Checker:
    def __init__(self, vocab: Vocabulary) -> None:
        self.v = vocab
        self.out: list[RuleWarning] = []
        self._events = vocab.event_names()

    def warn(self, path: str, kind: str, name: str, message: str, suggestions: list[str],
             event: str | None = None) -> None:  # fmt: skip
        self.out.append(RuleWarning(path, kind, name, message + _did_you_mean(suggestions), suggestions, event))

    # -- names -----------------------------------------------------------------------------

    def event(self, name: Any, path: str, *, any_ok: bool = False) -> EventSeen | None:
        """The event seen under `name`, or a warning (None)."""
        if not isinstance(name, str) or (any_ok and name == "*"):
            return None
        seen = self.v.events.get(name)
        if seen is None:
            why = "no events have been seen in this workspace yet" if not self.v.events else \
                f"no event {name!r} has been seen in this workspace"  # fmt: skip
            if name in VIEWS:
                why = f"no {VIEWS[name]} views ({name}) have been seen in this workspace"
            self.warn(path, "unknown_event", name, why, nearest(name, self._events))
        return seen

    def channel(self, name: Any, seen: EventSeen | None, event: str | None, path: str) -> None:
        if not isinstance(name, str):
            return
        everywhere = self.v.channels
        if name not in everywhere:
            self.warn(path, "unknown_channel", name, f"no event has been seen on channel {name!r}",
                      nearest(name, _by_count(everywhere)), event)  # fmt: skip
        elif seen is not None and name not in seen.channels:
            on = ", ".join(_by_count(seen.channels)[:5])
            self.warn(path, "unknown_channel", name, f"no {event!r} event has been seen on channel {name!r}"
                      f" (only on {on})", _by_count(seen.channels)[:3], event)  # fmt: skip

    def store(self, name: Any, seen: EventSeen | None, event: str | None, path: str) -> None:
        if not isinstance(name, str):
            return
        everywhere = self.v.stores
        if name not in everywhere:
            self.warn(path, "unknown_store", name, f"no event has been seen at store {name!r}",
                      nearest(name, _by_count(everywhere)), event)  # fmt: skip
        elif seen is not None and name not in seen.stores:
            self.warn(path, "unknown_store", name, f"no {event!r} event has been seen at store {name!r}",
                      nearest(name, _by_count(seen.stores)), event)  # fmt: skip

    def where(self, where: Any, seen: EventSeen | None, event: str | None, path: str) -> None:
        if not isinstance(where, Mapping) or seen is None or not seen.sampled:
            return
        for key, value in where.items():
            at = f"{path}.{key}"
            if key not in seen.keys:
                self.warn(at, "unknown_property", key, f"no {event!r} event has property {key!r}{_sample_note(seen)}",
                          nearest(key, _by_count(seen.keys)), event)  # fmt: skip
            elif isinstance(value, str):
                self.value(value, seen.values.get(key), seen.keys[key], at, f"no {event!r} event has {key!r}",
                           _sample_note(seen), event)  # fmt: skip

    def value(self, value: str, values: Mapping[str, int] | None, holders: int, path: str, lead: str, note: str,
              event: str | None = None) -> None:  # fmt: skip
        """Warn of a value only where the ones seen look like a short list of choices."""
        if not values or value in values or len(values) > min(_CHOICES_MAX, MAX_VALUES):
            return
        if holders < _CHOICES_REPEAT * len(values):
            return
        choices = _by_count(values)
        shown = ", ".join(repr(c) for c in choices[:6]) + (", …" if len(choices) > 6 else "")
        suggestions = nearest(value, choices) or choices[:3]
        self.warn(path, "unknown_value", value, f"{lead} {value!r}{note}: the values seen are {shown}",
                  suggestions, event)  # fmt: skip

    # -- rule nodes --------------------------------------------------------------------------

    def rule(self, node: Any, path: str) -> None:
        if not isinstance(node, Mapping):
            return
        for key in ("all", "any"):
            if isinstance(node.get(key), list):
                for i, child in enumerate(node[key]):
                    self.rule(child, f"{path}.{key}[{i}]")
                return
        if "not" in node:
            self.rule(node["not"], f"{path}.not")
        elif "did" in node or "first_did" in node:
            key = "did" if "did" in node else "first_did"
            name = node[key]
            seen = self.event(name, f"{path}.{key}")
            event = name if isinstance(name, str) else None
            self.channel(node.get("channel"), seen, event, f"{path}.channel")
            self.store(node.get("store_id"), seen, event, f"{path}.store_id")
            self.where(node.get("where"), seen, event, f"{path}.where")
        elif "trait" in node:
            self.trait(node, path)
        elif "data" in node:
            self.data_field(node["data"], f"{path}.data")
        elif "last" in node:
            event, prop = node["last"], node.get("property")
            seen = self.event(event, f"{path}.last")
            if seen is not None and isinstance(prop, str) and seen.sampled and f"{event}.{prop}" not in seen.fields:
                known = [f.split(".", 1)[1] for f in sorted(seen.fields)]
                self.warn(f"{path}.property", "unknown_property", prop, f"no {event!r} event has property"
                          f" {prop!r}{_sample_note(seen)}", nearest(prop, known), event)  # fmt: skip
        elif "computed" in node:
            name = node["computed"]
            if isinstance(name, str) and name not in self.v.computed:
                self.warn(f"{path}.computed", "unknown_computed", name, f"no computed trait {name!r} is defined",
                          nearest(name, sorted(self.v.computed)))  # fmt: skip
        elif "segment" in node:
            name = node["segment"]
            if isinstance(name, str) and name not in self.v.segments:
                self.warn(f"{path}.segment", "unknown_segment", name, f"no segment {name!r} is defined",
                          nearest(name, sorted(self.v.segments)))  # fmt: skip

    def trait(self, node: Mapping[str, Any], path: str) -> None:
        name = node["trait"]
        if not isinstance(name, str):
            return
        if name not in self.v.traits:
            why = "nobody in this workspace has trait" if self.v.people else "nobody is in this workspace yet: no trait"
            self.warn(f"{path}.trait", "unknown_trait", name, f"{why} {name!r}",
                      nearest(name, _by_count(self.v.traits)))  # fmt: skip
            return
        if node.get("op", "eq") not in _COMPARED_AS_TEXT:
            return
        value = node.get("value")
        values = value if isinstance(value, list) else [value]
        seen = self.v.trait_values.get(name)
        holders = sum(seen.values()) if seen else 0
        note = "" if self.v.people_sampled >= self.v.people else f" (of {self.v.people_sampled:,} people looked at)"
        for i, v in enumerate(values):
            if isinstance(v, str):
                at = f"{path}.value[{i}]" if isinstance(value, list) else f"{path}.value"
                self.value(v, seen, holders, at, f"nobody has {name!r}", note)

    def data_field(self, name: Any, path: str) -> None:
        if not isinstance(name, str):
            return
        event, _, rest = name.partition(".")
        if event == "$sessions":
            if rest or not self.v.events:
                self.warn(path, "unknown_field", name, f"no user data field {name!r}", nearest(name, self.v.fields()))
            return
        seen = self.v.events.get(event)
        if seen is None:
            why = f"no event {event!r} has been seen in this workspace, so no user data field {name!r}"
            self.warn(path, "unknown_field", name, why, nearest(name, self.v.fields()))
        elif rest and seen.sampled and name not in seen.fields:
            self.warn(path, "unknown_field", name, f"no {event!r} event has field {rest!r}{_sample_note(seen)}",
                      nearest(name, sorted(seen.fields)), event)  # fmt: skip

    # -- computed traits ---------------------------------------------------------------------

    def computed(self, body: Any, prefix: str) -> None:
        if not isinstance(body, Mapping):
            return
        at = (lambda key: f"{prefix}.{key}") if prefix else (lambda key: key)
        if isinstance(body.get("cases"), list):
            for i, case in enumerate(body["cases"]):
                if isinstance(case, Mapping):
                    self.rule(case.get("when"), at(f"cases[{i}].when"))
            return
        name = body.get("event")
        seen = self.event(name, at("event"), any_ok=True)
        event = name if isinstance(name, str) and name != "*" else None
        channel = body.get("channel")
        if isinstance(channel, str):
            for one in channel.split(","):
                self.channel(one, seen, event, at("channel"))
        self.store(body.get("store_id"), seen, event, at("store_id"))
        self.where(body.get("where"), seen, event, at("where"))
        prop = body.get("property")
        if not isinstance(prop, str) or prop in COLUMNS or body.get("agg") == "count":
            return
        if event is None:  # any track event: a property none of them has
            tracks = [s for n, s in self.v.events.items() if n not in VIEWS]
            if tracks and all(s.sampled for s in tracks) and not any(prop in s.paths for s in tracks):
                known = sorted(set().union(*(s.paths for s in tracks)))
                self.warn(at("property"), "unknown_property", prop, f"no track event has property {prop!r}"
                          " (of the latest looked at)", nearest(prop, known))  # fmt: skip
        elif seen is not None and seen.sampled and prop not in seen.paths:
            self.warn(at("property"), "unknown_property", prop, f"no {event!r} event has property {prop!r}"
                      f"{_sample_note(seen)}", nearest(prop, sorted(seen.paths)), event)  # fmt: skip


def _by_count(counts: Mapping[str, int]) -> list[str]:
    return sorted(counts, key=lambda k: (-counts[k], k))


def check_rule(rule: Any, vocab: Vocabulary, path: str = "rule") -> list[RuleWarning]:
    """The warnings of a valid segment rule (JSON), paths from `path`."""
    checker = _Checker(vocab)
    checker.rule(rule, path)
    return checker.out


def check_computed(body: Any, vocab: Vocabulary, prefix: str = "") -> list[RuleWarning]:
    """The warnings of a valid computed trait's body (`event`, `property`, … or `cases`)."""
    checker = _Checker(vocab)
    checker.computed(body, prefix)
    return checker.out


def indexed(w: RuleWarning, index: int) -> RuleWarning:
    return RuleWarning(w.path, w.kind, w.name, w.message, w.suggestions, w.event, index)
