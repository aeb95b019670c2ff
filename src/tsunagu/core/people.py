"""A person: identifiers, traits and the summary fields kept on every event.

Traits are last-writer-wins registers ordered by (event timestamp, message id), not by
arrival, so any arrival order, and any order of merges, gives the same traits.
`$set_once` keeps the earliest value and only shows while no ordinary write exists;
`$unset` is an ordinary write of a tombstone.
"""

from __future__ import annotations

from typing import Any

import msgspec

from . import userdata

__all__ = ["MAX_CONFLICTS", "MAX_IDENTIFIERS_PER_TYPE", "Person", "apply_traits", "merge_into"]

# A person holding thousands of anonymous ids is a shared kiosk or a bot; capping keeps
# one bad actor from making every merge and lookup slow.
MAX_IDENTIFIERS_PER_TYPE = 100
MAX_CONFLICTS = 20

_UNSET: Any = msgspec.UNSET


class Person(msgspec.Struct, kw_only=True, gc=False):
    person_id: str
    #: identifier type -> values, in the order they were linked
    identifiers: dict[str, list[str]] = msgspec.field(default_factory=dict)
    #: trait -> [timestamp, message_id, value, unset]
    trait_writes: dict[str, list[Any]] = msgspec.field(default_factory=dict)
    #: trait -> [timestamp, message_id, value] from $set_once
    trait_once: dict[str, list[Any]] = msgspec.field(default_factory=dict)
    first_seen: int = 0
    last_seen: int = 0
    channels: dict[str, int] = msgspec.field(default_factory=dict)
    stores: dict[str, int] = msgspec.field(default_factory=dict)
    event_count: int = 0
    #: person ids merged into this one (their events are on this timeline)
    merged_ids: list[str] = msgspec.field(default_factory=list)
    #: identifiers this person could not be linked to, and why
    conflicts: list[dict[str, Any]] = msgspec.field(default_factory=list)
    #: event-condition counter key -> calendar day -> count (what segment rules read)
    counters: dict[str, dict[int, int]] = msgspec.field(default_factory=dict)
    #: the segments this person is in
    segments: list[str] = msgspec.field(default_factory=list)
    #: user data: field ("buy", "buy.revenue", "$page.path") -> summary (core.userdata)
    data: dict[str, list[Any]] = msgspec.field(default_factory=dict)
    #: fields not summarised because the person already had MAX_FIELDS
    data_dropped: int = 0
    #: computed trait -> summary (core.computed)
    computed: dict[str, list[Any]] = msgspec.field(default_factory=dict)
    #: sessions: the current one's number (-1: none yet) and its last event's time
    session_no: int = -1
    session_last: int = 0

    @property
    def traits(self) -> dict[str, Any]:
        out = {k: w[2] for k, w in self.trait_once.items() if k not in self.trait_writes}
        for k, w in self.trait_writes.items():
            if not w[3]:
                out[k] = w[2]
        return dict(sorted(out.items()))

    def all_ids(self) -> list[str]:
        return [self.person_id, *self.merged_ids]

    def to_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "identifiers": self.identifiers,
            "traits": self.traits,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "channels": self.channels,
            "stores": self.stores,
            "event_count": self.event_count,
            "merged_ids": self.merged_ids,
            "conflicts": self.conflicts,
            "segments": self.segments,
        }


def _newer(a: list[Any], b: list[Any]) -> bool:
    return (a[0], a[1]) > (b[0], b[1])


def apply_traits(person: Person, traits: dict[str, Any], ts: int, message_id: str) -> bool:
    """Apply an identify's traits. Returns True if any visible trait may have changed."""
    changed = False
    writes = person.trait_writes
    for key, value in traits.items():
        if key == "$set_once" and isinstance(value, dict):
            for k, v in value.items():
                cur = person.trait_once.get(k)
                new = [ts, message_id, v]
                if cur is None or _newer(cur, new):
                    person.trait_once[k] = new
                    changed = True
            continue
        if key == "$unset":
            keys = value if isinstance(value, list) else [value]
            for k in keys:
                if isinstance(k, str):
                    new = [ts, message_id, None, True]
                    cur = writes.get(k)
                    if cur is None or _newer(new, cur):
                        writes[k] = new
                        changed = True
            continue
        new = [ts, message_id, value, False]
        cur = writes.get(key)
        if cur is None or _newer(new, cur):
            writes[key] = new
            changed = True
    return changed


def merge_into(survivor: Person, loser: Person) -> None:
    """Fold `loser` into `survivor`. Commutative and idempotent in everything but the ids."""
    for typ, values in loser.identifiers.items():
        mine = survivor.identifiers.setdefault(typ, [])
        for v in values:
            if v not in mine and len(mine) < MAX_IDENTIFIERS_PER_TYPE:
                mine.append(v)
    for k, w in loser.trait_writes.items():
        cur = survivor.trait_writes.get(k)
        if cur is None or _newer(w, cur):
            survivor.trait_writes[k] = w
    for k, w in loser.trait_once.items():
        cur = survivor.trait_once.get(k)
        if cur is None or _newer(cur, w):
            survivor.trait_once[k] = w
    if loser.event_count:
        survivor.first_seen = min(survivor.first_seen, loser.first_seen) if survivor.event_count else loser.first_seen
        survivor.last_seen = max(survivor.last_seen, loser.last_seen)
    for c, n in loser.channels.items():
        survivor.channels[c] = survivor.channels.get(c, 0) + n
    for s, n in loser.stores.items():
        survivor.stores[s] = survivor.stores.get(s, 0) + n
    survivor.event_count += loser.event_count
    for pid in (loser.person_id, *loser.merged_ids):
        if pid not in survivor.merged_ids:
            survivor.merged_ids.append(pid)
    survivor.conflicts = (survivor.conflicts + loser.conflicts)[-MAX_CONFLICTS:]
    for key, days in loser.counters.items():
        mine = survivor.counters.setdefault(key, {})
        for day, n in days.items():
            mine[day] = mine.get(day, 0) + n
    for target, source in ((survivor.data, loser.data), (survivor.computed, loser.computed)):
        for key, summary in source.items():
            if key in target:
                userdata.merge_summary(target[key], summary)
            else:
                target[key] = summary
    survivor.data_dropped += loser.data_dropped
    if loser.session_last > survivor.session_last:
        survivor.session_no, survivor.session_last = max(survivor.session_no, loser.session_no), loser.session_last
