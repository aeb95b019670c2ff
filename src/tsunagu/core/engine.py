"""The engine: identity resolution and person state, applied one event at a time.

`Engine.apply` is the pure core of the ingest loop: `(events, state, config) -> (new
state, effects)`. It never reads the clock or touches storage; adapters hand it events
in log order and take away the rows and changed persons it returns.

Identity: every identifier key (`user_id:M1`, `anonymous_id:a-9`) points at one person.
An event's keys are looked up; unknown keys join the event's person; two persons that
share a key are merged (the one seen first survives, the other's id becomes an alias).
Types in `config.unique_identifiers` (user_id) are never doubled on a person: a link
that would give one person two user_ids is refused and recorded as a conflict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from .config import WorkspaceConfig
from .effects import Effect, IdentityConflict, Merged
from .events import Event
from .identity import identifiers_of, split_key
from .live import Live
from .people import MAX_CONFLICTS, MAX_IDENTIFIERS_PER_TYPE, Person, merge_into
from .ports import PersonStore
from .segments import Segment
from .step import step
from .store import KeyMap, Persons

__all__ = ["Applied", "Engine", "EventFailed", "Forgotten"]


@dataclass(slots=True)
class Applied:
    """What applying a run of events produced."""

    person_ids: list[str] = field(default_factory=list)  # one per event, in order
    effects: list[Effect] = field(default_factory=list)  # what was decided, in order (core.effects)
    merged: list[tuple[str, str]] = field(default_factory=list)  # (loser, survivor)

    def timeline(self) -> list[Effect]:
        """The effects that are entries on a person's timeline (not timers)."""
        return [e for e in self.effects if e.timeline]


class EventFailed(Exception):
    """The engine could not apply `events[index]` (a bug, since the edge admits only
    storable values). `applied` holds the results of the events before it."""

    def __init__(self, index: int, event: Event, error: BaseException, applied: Applied, person_id: str | None):
        super().__init__(f"event {index} ({event.message_id}) could not be applied: {error!r}")
        self.index = index
        self.event = event
        self.error = error
        self.applied = applied
        self.person_id = person_id


@dataclass(slots=True)
class Forgotten:
    person_ids: list[str]
    identifiers: list[str]


def _new_person_id(namespace: str, message_id: str, key: str) -> str:
    # Derived from the log, not random: replaying the log rebuilds the same ids. The
    # workspace is part of it, so one message sent to two workspaces makes two ids.
    digest = hashlib.blake2b(f"{namespace}\x00{message_id}\x00{key}".encode(), digest_size=10).hexdigest()
    return "p_" + digest


class Engine:
    def __init__(self, config: WorkspaceConfig | None = None, *, namespace: str = "") -> None:
        self.config = config or WorkspaceConfig()
        self.namespace = namespace  # the workspace: part of every person id
        self.dirty: set[str] = set()  # changed since the analytics writer last took them
        self.dirty_state: set[str] = set()  # taken by analytics, not yet checkpointed
        self.removed: set[str] = set()  # merged away or forgotten since the last checkpoint
        self._unique = frozenset(self.config.unique_identifiers)
        self.live = Live(ZoneInfo(self.config.timezone))
        self.attach(None)

    def attach(self, store: PersonStore | None, cache: int = 0) -> None:
        """Keep persons in `store` (None: in memory only), at most about `cache` of them
        in memory (0: all). The maps start empty: the store is read on demand."""
        self.persons: dict[str, Person] = Persons(store, cache)  # type: ignore[assignment]
        #: identifier key -> person id
        self.index: dict[str, str] = KeyMap(store.key if store else None, store.keys if store else None, cache * 4)  # type: ignore[assignment]
        #: merged person id -> surviving person id
        self.aliases: dict[str, str] = KeyMap(store.alias if store else None, store.aliases if store else None, cache)  # type: ignore[assignment]
        persons = self.persons
        self.live.timer_changed = set() if store is not None else None
        self.live.members_changed = set() if store is not None else None
        self.live.stored_due = store.timers_due if store is not None else None
        if isinstance(persons, Persons):
            dirty, dirty_state = self.dirty, self.dirty_state
            persons.pinned = lambda pid: pid in dirty or pid in dirty_state
            persons.on_load = self.live.adopt

    def settle(self, trim: bool = False) -> None:
        """After an operation: pin what it changed; with `trim` (after a checkpoint, when
        persons stopped being pinned) evict down to the cache's size."""
        persons = self.persons
        live = self.live
        if live.touched:
            self.dirty.update(pid for pid in live.touched if pid in persons)
            live.touched.clear()
        if isinstance(persons, Persons):
            if persons.changed:
                self.dirty.update(persons.changed)
                persons.changed.clear()
            if trim and persons.limit and persons.in_memory() > persons.limit:
                persons.trim()
                self.index.trim()  # type: ignore[attr-defined]
                self.aliases.trim()  # type: ignore[attr-defined]

    @property
    def segments(self) -> dict[str, Segment]:
        return self.live.segments

    # -- reads -------------------------------------------------------------------------

    def canonical(self, person_id: str) -> str | None:
        if person_id in self.persons:
            return person_id
        return self.aliases.get(person_id)

    def get(self, person_id: str) -> Person | None:
        pid = self.canonical(person_id)
        return self.persons.get(pid) if pid else None

    def lookup(self, typ: str, value: str) -> Person | None:
        pid = self.index.get(f"{typ}:{value}")
        return self.persons.get(pid) if pid else None

    def resolve(self, event: Event) -> str | None:
        """The person an already-applied event belongs to now (no state change)."""
        for key in identifiers_of(event, self.config):
            if (pid := self.index.get(key)) is not None:
                return pid
        return None

    # -- the hot path ------------------------------------------------------------------

    def apply(self, events: Iterable[Event]) -> Applied:
        """Apply events in order. If one fails, raise `EventFailed` with what came before.

        The events before the failing one are applied (their results are in the error's
        `applied`); the failing one may have left the persons it touched half-changed:
        `core.repair` puts them back.
        """
        out = Applied()
        persons = self.persons
        index = self.index
        dirty = self.dirty
        live = self.live
        effects = out.effects
        for i, ev in enumerate(events):
            pid = None
            n_effects = len(effects)
            n_merged = len(out.merged)
            try:
                # Fast path (most track/page events): the event's user_id and anonymous_id
                # are already known and on the same person, and it carries nothing else.
                if ev.links is None and ev.type != "identify" and ev.type != "alias":
                    uid = ev.user_id
                    aid = ev.anonymous_id
                    if uid is None:
                        pid = index.get("anonymous_id:" + aid)  # type: ignore[operator]
                    else:
                        pid = index.get("user_id:" + uid)
                        if aid is not None and pid is not None and index.get("anonymous_id:" + aid) != pid:
                            pid = None
                if pid is None:
                    keys = identifiers_of(ev, self.config)
                    if ev.type == "alias" and ev.previous_id is not None:
                        keys.append(self._previous_key(ev.previous_id))
                    pid = self._link(ev, keys, out)
                step(ev, persons[pid], live, ev.received_at, effects)
            except Exception as exc:
                # the sizes and timers follow the half-changed person, so that core.repair
                # puts both back together; the effects never reach the timeline
                live.commit(effects[n_effects:])
                del effects[n_effects:]
                del out.merged[n_merged:]
                raise EventFailed(i, ev, exc, out, pid) from exc
            if len(effects) != n_effects:  # what the step decided, applied to what is kept across persons
                live.commit(effects[n_effects:])
            dirty.add(pid)
            out.person_ids.append(pid)
        self.settle()
        return out

    # -- definitions, back-fill and time ----------------------------------------------

    def set_segments(self, segments: Iterable[Segment], now: int = 0) -> Applied:
        """Register segments directly, without definitions or back-fill (tests, tools)."""
        self.live.segments = {seg.name: seg for seg in segments}
        out = Applied()
        out.effects = self.live._reindex(self.persons, 0, now)
        self._committed(out)
        self.settle()
        return out

    def define(self, kind: str, name: str, body: dict[str, Any], seq: int, now: int) -> Applied:
        out = Applied()
        out.effects = self.live.define(kind, name, body, seq, self.persons, now)
        self._committed(out)
        self.settle()
        return out

    def undefine(self, kind: str, name: str, now: int) -> Applied:
        out = Applied()
        out.effects = self.live.undefine(kind, name, self.persons, now)
        self._committed(out)  # members left; what else changed is touched
        self.settle()
        return out

    def apply_backfill(self, backfill_id: str, rows: list[Any], cursor: str, done: bool, now: int) -> Applied:
        out = Applied()
        out.effects = self.live.apply_backfill(backfill_id, rows, cursor, done, self.get, self.persons, now)
        for pid, _, _ in rows:
            if (c := self.canonical(pid)) is not None:
                self.dirty.add(c)
        self._committed(out)
        return out

    def tick(self, now: int) -> Applied:
        """Time passed: re-check the persons whose window edge did."""
        out = Applied()
        out.effects = self.live.tick(now, self.get)
        self._committed(out)
        return out

    def members_moved(self, *person_ids: str) -> None:
        """These persons' memberships changed other than by an entry or exit (a merge, a
        forget, a repair): the member index rewrites them."""
        if self.live.members_changed is not None:
            self.live.members_changed.update(person_ids)

    def member_changes(self) -> tuple[dict[str, list[str] | None], list[str]]:
        """For a checkpoint: each changed person's segments now (None: gone), and the
        segments deleted since the last call."""
        live = self.live
        if live.members_changed is None:
            return {}, []
        out: dict[str, list[str] | None] = {}
        for pid in live.members_changed:
            p = self.persons.get(pid)
            out[pid] = sorted(p.segments) if p is not None else None
        live.members_changed.clear()
        dropped = sorted(live.segments_dropped)
        live.segments_dropped.clear()
        return out, dropped

    def _committed(self, out: Applied) -> None:
        """Apply a change's effects: sizes and timers, and the persons it changed are dirty."""
        self.live.commit(out.effects)
        self.dirty.update(e.person_id for e in out.effects if e.timeline)
        self.settle()

    def _previous_key(self, previous_id: str) -> str:
        # Segment's alias does not say what previousId is; use whatever we know it as.
        for typ in ("user_id", "anonymous_id"):
            if f"{typ}:{previous_id}" in self.index:
                return f"{typ}:{previous_id}"
        return f"anonymous_id:{previous_id}"

    def _link(self, ev: Event, keys: list[str], out: Applied) -> str:
        """Find or create the event's person, linking and merging by its keys."""
        index = self.index
        found: list[str] = []
        missing: list[str] = []
        for key in keys:
            pid = index.get(key)
            if pid is None:
                if key not in missing:
                    missing.append(key)
            elif pid not in found:
                found.append(pid)
        if not keys:  # cannot happen for validated events; keep the engine total anyway
            missing.append("anonymous_id:" + ev.message_id)

        target: Person | None = self.persons[found[0]] if found else None
        # The event belongs to its unique identifiers (its user_id): if the person found
        # through weaker keys already holds a different user_id, this is someone else.
        if target is not None:
            for k in missing:
                if k[: k.index(":")] in self._unique and not self._fits(target, k):
                    target = None
                    break
        if target is None:
            seed = next((k for k in missing if split_key(k)[0] in self._unique), missing[0] if missing else keys[0])
            target = Person(person_id=_new_person_id(self.namespace, ev.message_id, seed))
            self.persons[target.person_id] = target
            self._attach(target, seed)
            if seed in missing:
                missing.remove(seed)
        # The event's own unique identifiers join first, so that merging the persons found
        # through weaker keys (a shared email) is checked against them.
        for key in [k for k in missing if k[: k.index(":")] in self._unique]:
            if self._fits(target, key):
                self._attach(target, key)
                missing.remove(key)
        for pid in found:
            other = self.persons.get(self.canonical(pid) or "")
            if other is None or other is target:
                continue
            clash = self._clash(target, other)
            if clash:
                self._conflict(target, other, clash, ev, out)
                continue
            target = self._merge(target, other, ev, out)
        for key in missing:
            if self._fits(target, key):
                self._attach(target, key)
            else:
                self._conflict_key(target, key, ev, out)
        return target.person_id

    def _fits(self, person: Person, key: str) -> bool:
        typ, value = split_key(key)
        values = person.identifiers.get(typ)
        if not values:
            return True
        if typ in self._unique:
            return values == [value]
        return True

    def _clash(self, a: Person, b: Person) -> str | None:
        for typ in self._unique:
            va, vb = a.identifiers.get(typ), b.identifiers.get(typ)
            if va and vb and va != vb:
                return typ
        return None

    def _attach(self, person: Person, key: str) -> None:
        typ, value = split_key(key)
        values = person.identifiers.setdefault(typ, [])
        if value not in values:
            if len(values) >= MAX_IDENTIFIERS_PER_TYPE:
                return
            values.append(value)
        self.index[key] = person.person_id

    def _merge(self, a: Person, b: Person, ev: Event, out: Applied) -> Person:
        # The person seen first survives, so the outcome does not depend on arrival order
        # when the histories are complete (ties fall to the smaller id).
        def rank(p: Person) -> tuple[int, str]:
            return (p.first_seen if p.event_count else ev.timestamp, p.person_id)

        survivor, loser = (a, b) if rank(a) <= rank(b) else (b, a)
        merge_into(survivor, loser)
        for typ, values in loser.identifiers.items():
            for v in values:
                self.index[f"{typ}:{v}"] = survivor.person_id
        for pid in (loser.person_id, *loser.merged_ids):
            self.aliases[pid] = survivor.person_id
        del self.persons[loser.person_id]
        self.dirty.discard(loser.person_id)
        self.dirty_state.discard(loser.person_id)
        self.removed.add(loser.person_id)
        out.merged.append((loser.person_id, survivor.person_id))
        self.live.unschedule(loser.person_id)
        self.members_moved(loser.person_id, survivor.person_id)
        if self.segments:
            self.live.joined(set(survivor.segments) & set(loser.segments), -1)  # one person now
            survivor.segments = sorted(set(survivor.segments) | set(loser.segments))
            self.live.evaluate_person(survivor, self.segments.values(), ev.received_at, ev.message_id, out.effects)
        merged = Merged(survivor.person_id, loser.person_id, loser.identifiers, loser.first_seen,
                        loser.event_count, ev.timestamp, ev.message_id)  # fmt: skip
        out.effects.append(merged)
        return survivor

    def _conflict(self, target: Person, other: Person, typ: str, ev: Event, out: Applied) -> None:
        record = {
            "type": typ,
            "values": sorted({*target.identifiers.get(typ, []), *other.identifiers.get(typ, [])}),
            "person_id": other.person_id,
            "message_id": ev.message_id,
            "timestamp": ev.timestamp,
        }
        self._record_conflict(target, record, ev, out)

    def _conflict_key(self, target: Person, key: str, ev: Event, out: Applied) -> None:
        typ, value = split_key(key)
        record = {
            "type": typ,
            "values": sorted({*target.identifiers.get(typ, []), value}),
            "refused": key,
            "message_id": ev.message_id,
            "timestamp": ev.timestamp,
        }
        self._record_conflict(target, record, ev, out)

    def _record_conflict(self, target: Person, record: dict[str, Any], ev: Event, out: Applied) -> None:
        if record not in target.conflicts:
            target.conflicts = [*target.conflicts, record][-MAX_CONFLICTS:]
        out.effects.append(IdentityConflict(target.person_id, record, ev.timestamp, ev.message_id))

    # -- right to be forgotten ---------------------------------------------------------

    def forget(self, person_id: str, holders: Iterable[str] | None = None) -> Forgotten | None:
        """Remove a person (and their merged ids) and their identifiers; other persons'
        conflict records that name them go too. `holders`: the persons that may hold such
        records (the runtime finds them in the timeline), so no pass over everyone is made;
        None: look at every person."""
        person = self.get(person_id)
        if person is None:
            return None
        keys = [f"{t}:{v}" for t, vs in person.identifiers.items() for v in vs]
        for key in keys:
            if self.index.get(key) == person.person_id:
                del self.index[key]
        ids = person.all_ids()
        self.members_moved(*ids)
        for pid in ids:
            self.live.unschedule(pid)
            self.aliases.pop(pid, None)
            self.dirty.discard(pid)
            self.dirty_state.discard(pid)
            self.removed.add(pid)
        del self.persons[person.person_id]
        self.live.joined(person.segments, -1)
        # Other people's conflict records name the forgotten person's ids: drop those too.
        gone_ids = set(ids)
        gone_values = {v for t, vs in person.identifiers.items() if t in self._unique for v in vs}
        if holders is None:
            others: Iterable[Person] = self.persons.values()
        else:
            found = (self.get(c) for pid in holders if (c := self.canonical(pid)) is not None)
            others = [p for p in found if p is not None]
        for other in others:
            if other.conflicts:
                kept = [
                    c
                    for c in other.conflicts
                    if c.get("person_id") not in gone_ids and not gone_values.intersection(c.get("values", ()))
                ]
                if len(kept) != len(other.conflicts):
                    other.conflicts = kept
                    self.dirty.add(other.person_id)
        self.settle()
        return Forgotten(ids, keys)

    # -- checkpoints -------------------------------------------------------------------

    def load(self, persons: Iterable[Person]) -> None:
        for p in persons:
            self.persons[p.person_id] = p
            self.live.joined(p.segments, +1)
            for typ, values in p.identifiers.items():
                for v in values:
                    self.index[f"{typ}:{v}"] = p.person_id
            for old in p.merged_ids:
                self.aliases[old] = p.person_id
