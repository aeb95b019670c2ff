"""What the engine keeps current per person on every event: user data, computed traits,
event counters and segment membership, and the timer that flips time-based segments.

`Live` belongs to the engine and is just as pure: every method takes the instant it
acts at. Definitions (segments, computed traits) arrive as log records, so replaying the
log rebuilds exactly the same state:

* `define` registers a definition at a log seq. The counters and aggregates it brings
  count live from there; the events before it are counted by a **back-fill** (rows
  computed by SQL over the analytics store, applied in chunks that are log records too).
  Until its back-fill is done, a segment is *building*: it emits no entries or exits.
* `observe` updates a person for one event: one bucket per user data field, per matching
  computed trait and per matching counter (conditions are indexed by event name, so an
  event touches only what names it), then re-evaluates only the segments that event
  can change, in dependency order (a segment may read another).
* `tick` re-checks the people whose window edge passed: a person is scheduled for the
  day their oldest in-window event leaves a window, never re-checked otherwise.

What these decide comes back as effects (`core.effects`: entries, exits, timers): an
evaluation reads the catalog (definitions, indexes, segment sizes, the timer index) and
changes only the person; `commit` then applies the effects to the sizes and the timer
index. The engine calls it after each event, definition change, back-fill chunk and tick.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from . import kinds, userdata
from .computed import Aggregate, Cases, ComputedTrait, aggregate_value, values_at
from .effects import Effect, SegmentEntered, SegmentExited, TimerSet
from .errors import InvalidInput
from .events import Event
from .kinds import Need
from .people import Person
from .segments import (
    VIEWS,
    ComputedIs,
    DataIs,
    Did,
    Facts,
    FirstDid,
    InSegment,
    Rule,
    Segment,
)

__all__ = ["DayCache", "Definition", "Live"]

_DAY_MS = 86_400_000


@dataclass
class Definition:
    kind: str
    name: str
    body: dict[str, Any]
    seq: int  # the log record that defined it
    version: int = 1
    defined_at: int = 0  # when this version was defined (ms; 0: before this was kept)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "body": self.body, "seq": self.seq, "version": self.version}


@dataclass
class Backfill:
    """Counting the history before `upto_seq` into a new counter or computed trait."""

    kind: str  # "counter" | "computed" | "data"
    key: str  # the counter key, the computed trait's name or the user data field
    upto_seq: int
    cursor: str = ""  # person ids (as the events hold them) up to here are done
    rows: int = 0
    spec: dict[str, Any] = field(default_factory=dict)  # what to count (for the SQL)

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.key}"


def _reads_sessions(rule: Rule) -> bool:
    """Does a rule read a session window (which a new session changes, whatever the event)?"""
    if isinstance(rule, DataIs):
        return rule.window in ("this_session", "previous_session")
    inner = getattr(rule, "rule", None)
    return any(_reads_sessions(r) for r in (*getattr(rule, "rules", ()), *([inner] if inner else [])))


class DayCache:
    """day_of(ms) without a time-zone conversion per event: one per calendar day."""

    __slots__ = ("day", "end", "start", "zone")

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.start = self.end = 0
        self.day = 0

    def __call__(self, ms: int) -> int:
        if self.start <= ms < self.end:
            return self.day
        local = datetime.fromtimestamp(ms / 1000, UTC).astimezone(self.zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        day = local.date().toordinal() - 719163
        start = int(midnight.timestamp() * 1000)
        # the next local midnight (23, 24 or 25 hours later)
        nxt = datetime.fromordinal(local.date().toordinal() + 1).replace(tzinfo=self.zone)
        self.start, self.end, self.day = start, int(nxt.timestamp() * 1000), day
        return day


class Live:
    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.day_of = DayCache(zone)
        self.definitions: dict[tuple[str, str], Definition] = {}
        #: stored definitions that did not parse when loaded: (kind, name, reason)
        self.skipped: list[tuple[str, str, str]] = []
        self.segments: dict[str, Segment] = {}  # in dependency order
        self.computed: dict[str, ComputedTrait] = {}
        self.backfills: dict[str, Backfill] = {}
        #: the forms of definitions of kinds other than segments and computed traits
        self.forms: dict[tuple[str, str], Any] = {}
        #: what some definition needs kept per person (`Need.id` -> need), and who needs what
        self.needs: dict[str, Need] = {}
        self._needs_of: dict[tuple[str, str], list[str]] = {}
        self._counters: dict[str, Did] = {}  # live counter key -> condition
        #: the user data fields some definition reads: only those are kept live
        self.data_fields: frozenset[str] = frozenset()
        #: event name -> (its own summary is read, the fields of it that are read)
        self._data_by_event: dict[str, tuple[bool, frozenset[str]]] = {}
        self._counters_by_event: dict[str, list[tuple[str, str | None, str | None, tuple[Any, ...]]]] = {}
        self._aggs_by_event: dict[str, list[tuple[Any, ...]]] = {}
        #: what can change a segment -> the segments: "c:" a counter was bumped, "a:" a computed
        #: aggregate took a value, "e:" an event of that name came (user data fields)
        #: what can change a segment -> the segments (their positions in `_ordered`)
        self._segments_by_dep: dict[str, list[int]] = {}
        self._segments_by_trait: list[int] = []
        self._ordered: list[Segment] = []  # the segments in dependency order
        self._dependents: dict[int, list[int]] = {}  # segment -> segments that read it
        self._building: set[str] = set()  # segments waiting for a back-fill
        self._building_at: frozenset[int] = frozenset()
        self._timed_at: frozenset[int] = frozenset()
        self._timed: list[Segment] = []
        self._timed_leaves: list[Rule] = []
        self._order_index: dict[str, int] = {}
        self._evaluated: dict[str, int] = {}  # segment -> the version a full pass was made for
        self.due: dict[int, set[str]] = {}  # day -> persons to re-check that day
        self.next_check: dict[str, int] = {}
        self._edge_checked: dict[str, int] = {}  # person -> the day their exact edge was last computed
        self._edge_day = -1  # the day _edge_checked is about
        #: persons a change of definitions altered without a marker (the engine pins them)
        self.touched: set[str] = set()
        #: segment -> members, kept as memberships change (no pass over every person)
        self.sizes: dict[str, int] = {}
        #: persons whose timer changed since the last checkpoint (None: not tracked, and
        #: every timer is in `next_check`); with a store, memory holds only those (and the
        #: ones a checkpoint in flight writes), the rest wait in the store's timer index
        self.timer_changed: set[str] | None = None
        self._timers_saving: set[str] = set()
        #: the store's timers due by a day: (person, day) (None: no store)
        self.stored_due: Callable[[int], Iterable[tuple[str, int]]] | None = None
        #: persons whose memberships changed since the last checkpoint, and segments
        #: deleted since (the person store's member index follows; None: not tracked)
        self.members_changed: set[str] | None = None
        self.segments_dropped: set[str] = set()

    # -- definitions ---------------------------------------------------------------------

    def parse(self, kind: str, name: str, body: Any) -> Any:
        """A definition's form, built by its kind (`core.kinds`). Validation against the
        other definitions is the planner's (`core.plan`), done once before a record is logged."""
        if not isinstance(body, dict):
            raise InvalidInput.for_field("body", "must be an object")
        return kinds.kind(kind).parse(name, body, "")

    def define(
        self, kind: str, name: str, body: dict[str, Any], seq: int, persons: dict[str, Person], now: int
    ) -> list[Effect]:
        form = self.parse(kind, name, body)
        old = self.definitions.get((kind, name))
        if old is not None and old.body == body:
            return []
        self.definitions[(kind, name)] = Definition(kind, name, body, seq, old.version + 1 if old else 1, now)
        self._install(kind, name, form)
        return self._reindex(persons, seq, now)

    def _install(self, kind: str, name: str, form: Any) -> None:
        if kind == "segment":
            self.segments[name] = form
        elif kind == "computed_trait":
            self.computed[name] = form
        else:
            self.forms[(kind, name)] = form

    def _all_forms(self) -> Iterator[tuple[str, str, Any]]:
        """Every definition's form: (kind, name, form)."""
        for name, c in self.computed.items():
            yield "computed_trait", name, c
        for name, seg in self.segments.items():
            yield "segment", name, seg
        for (kind, name), form in self.forms.items():
            yield kind, name, form

    def readers(self, kind: str, name: str) -> list[tuple[str, str]]:
        """The definitions that read (kind, name)."""
        return [key for key, d in self.definitions.items()
                if key[0] in kinds.KINDS and any((r.kind, r.name) == (kind, name)
                                                 for r in kinds.KINDS[key[0]].references(d.body))]  # fmt: skip

    def undefine_check(self, kind: str, name: str) -> None:
        """Refuse to remove what another definition reads."""
        readers = self.readers(kind, name)
        if readers:
            label = kinds.KINDS[readers[0][0]].label
            raise InvalidInput.for_field("name", f"{name!r} is read by {label} {readers[0][1]!r}; change that first")

    def undefine(self, kind: str, name: str, persons: dict[str, Person], now: int) -> list[Effect]:
        if (kind, name) not in self.definitions:
            return []
        self.undefine_check(kind, name)
        del self.definitions[(kind, name)]
        markers: list[Effect] = []
        if kind == "segment":
            del self.segments[name]
            self._evaluated.pop(name, None)
            self.sizes.pop(name, None)
            if self.members_changed is not None:
                self.segments_dropped.add(name)
            for p in persons.values():
                if name in p.segments:  # members leave, on their timelines too
                    p.segments = [s for s in p.segments if s != name]
                    markers.append(SegmentExited(p.person_id, name, now, f"undefine:{now}", removed=True))
        elif kind == "computed_trait":
            del self.computed[name]
        else:
            self.forms.pop((kind, name), None)
        markers += self._reindex(persons, 0, now)  # what it alone needed is dropped from every person
        return markers

    def _reindex(self, persons: dict[str, Person], seq: int, now: int) -> list[Effect]:
        """Rebuild the indexes from what every definition needs (its kind says: `needs`);
        a new need gets a back-fill, a need no definition has any more is dropped from every
        person; ready segments get a full pass."""
        ordered = self._order()
        self.segments = {n: self.segments[n] for n in ordered}
        needs: dict[str, Need] = {}
        needs_of: dict[tuple[str, str], list[str]] = {}
        for kind, name, form in self._all_forms():
            d = self.definitions.get((kind, name))
            found = kinds.KINDS[kind].needs(form, d.body if d else {})
            needs_of[(kind, name)] = [n.id for n in found]
            for n in found:
                needs.setdefault(n.id, n)
        old = self.needs
        dropped = [n for i, n in old.items() if i not in needs or needs[i].spec != n.spec]
        for n in dropped:
            self.backfills.pop(n.id, None)
        if dropped:  # one pass over every person for all of them
            for p in persons.values():
                for n in dropped:
                    if _held(p, n.kind).pop(n.key, None) is not None:
                        self.touched.add(p.person_id)
        for i, n in needs.items():
            if (i not in old or old[i].spec != n.spec) and seq and persons:  # no persons yet: no history to count
                self.backfills[i] = Backfill(n.kind, n.key, seq, spec=dict(n.spec))
        self.needs = needs
        self._needs_of = needs_of
        wanted: dict[str, Did] = {n.key: n.form for n in needs.values() if n.kind == "counter"}
        wanted_data = frozenset(n.key for n in needs.values() if n.kind == "data")
        self.data_fields = wanted_data
        by_name: dict[str, tuple[bool, set[str]]] = {}
        for key in wanted_data:
            name, dot, _ = key.partition(".")
            own, fields = by_name.setdefault(name, (False, set()))
            by_name[name] = (own or not dot, fields | ({key} if dot else set()))
        self._data_by_event = {name: (own, frozenset(fields)) for name, (own, fields) in by_name.items()}
        self._counters = wanted
        # What an event is matched against, precompiled: (counter key, channel, store, where)
        by_event: dict[str, list[tuple[str, str | None, str | None, tuple[tuple[str, Any], ...]]]] = {}
        for key, cond in wanted.items():
            by_event.setdefault(cond.event, []).append((key, cond.channel, cond.store_id, cond.where, "c:" + key))
        self._counters_by_event = by_event
        # (trait, channels, store, where, property, days kept); "*" traits join every track
        # event's list (not the views': `$page`, `$screen`)
        kept = [n.form for n in needs.values() if n.kind == "computed" and isinstance(n.form, Aggregate)]
        star = [a for a in kept if a.event == "*"]
        aggs: dict[str, list[tuple[Any, ...]]] = {}
        for c in kept:
            if c.event != "*":
                aggs.setdefault(c.event, [])
        for event in [*aggs, "*"]:
            aggs[event] = [
                (a.name, frozenset(a.channels) or None, a.store_id, a.where, a.prop, a.keep_days, "a:" + a.name)
                for a in kept
                if a.event == event or (a in star and event not in VIEWS)
            ]
        self._aggs_by_event = aggs
        # Segments are evaluated by their position in dependency order (ints sort and
        # compare faster than segments keyed by name, on every event).
        self._ordered = list(self.segments.values())
        order = self._order_index = {name: i for i, name in enumerate(self.segments)}
        self._building = {n for n in self.segments if self._needs_backfill(self.segments[n])}
        self._building_at = frozenset(order[n] for n in self._building)
        seg_by_dep: dict[str, list[int]] = {}
        self._dependents = {}
        for i, seg in enumerate(self._ordered):
            for dep in self._deps_of(seg):
                seg_by_dep.setdefault(dep, []).append(i)
            for other in seg.segments:
                self._dependents.setdefault(order[other], []).append(i)
        self._segments_by_dep = seg_by_dep
        self._segments_by_trait = [i for i, s in enumerate(self._ordered) if s.traits or self._reads_cases(s)]
        self._timed = [s for s in self.segments.values() if self._is_timed(s)]
        self._timed_at = frozenset(order[s.name] for s in self._timed)
        self._timed_leaves = self._timed_leaf_conditions()
        # Segments that are new, changed, or whose back-fill just finished get a full pass.
        ready = [
            seg for name, seg in self.segments.items()
            if name not in self._building and self._evaluated.get(name) != self._version(name)
        ]  # fmt: skip
        return self.evaluate_all(persons, ready, now)

    def _version(self, name: str) -> int:
        d = self.definitions.get(("segment", name))
        return d.version if d else 0

    def _needs_backfill(self, seg: Segment) -> bool:
        return bool(self.pending_for("segment", seg.name))

    def pending_for(self, kind: str, name: str) -> list[Backfill]:
        """The back-fills a definition waits for, its own and those of what it reads (none: ready)."""
        ids: dict[str, None] = {}  # ordered, once each
        seen: set[tuple[str, str]] = set()

        def walk(key: tuple[str, str]) -> None:
            if key in seen:
                return
            seen.add(key)
            ids.update(dict.fromkeys(self._needs_of.get(key, ())))
            d = self.definitions.get(key)
            if d is not None and key[0] in kinds.KINDS:
                for ref in kinds.KINDS[key[0]].references(d.body):
                    walk((ref.kind, ref.name))
            elif key[0] == "segment" and key[1] in self.segments:  # set_segments: no definition
                for other in self.segments[key[1]].segments:
                    walk(("segment", other))
                for c in self.segments[key[1]].computed:
                    walk(("computed_trait", c))

        walk((kind, name))
        return [self.backfills[i] for i in ids if i in self.backfills]

    def _reads_cases(self, seg: Segment) -> bool:
        return any(isinstance(self.computed.get(c), Cases) and self.computed[c].reads().traits for c in seg.computed)

    def _deps_of(self, seg: Segment) -> set[str]:
        """The keys of what can change the segment's membership when an event comes."""
        out = {"c:" + c.key for c in seg.counters} | {"e:" + f.split(".", 1)[0] for f in seg.data}
        if _reads_sessions(seg.rule):
            out.add("e:$sessions")
        for name in seg.computed:
            c = self.computed.get(name)
            if isinstance(c, Aggregate):
                out.add("a:" + name)
            elif isinstance(c, Cases):
                reads = c.reads()
                out |= {"c:" + d.key for d in reads.counters} | {"e:" + f.split(".", 1)[0] for f in reads.data}
                if _reads_sessions(reads.rule):
                    out.add("e:$sessions")
        for other in seg.segments:
            if other in self.segments:
                out |= self._deps_of(self.segments[other])
        return out

    def _is_timed(self, seg: Segment) -> bool:
        if seg.timed:
            return True
        for name in seg.computed:
            c = self.computed.get(name)
            if (isinstance(c, Aggregate) and c.timed) or (isinstance(c, Cases) and c.reads().timed):
                return True
        return any(self._is_timed(self.segments[s]) for s in seg.segments if s in self.segments)

    def _order(self) -> list[str]:
        """Segments in dependency order: the ones read come first."""
        out: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen or name not in self.segments:
                return
            seen.add(name)
            for dep in sorted(self.segments[name].segments):
                visit(dep)
            out.append(name)

        for name in sorted(self.segments):
            visit(name)
        return out

    # -- per event -----------------------------------------------------------------------

    def observe(
        self, p: Person, ev: Event, traits_changed: bool, is_new: bool, out: list[Effect], now: int | None = None
    ) -> None:
        """Fold one event into the person, then re-evaluate what it can change (as of `now`:
        when it was received, unless said)."""
        typ = ev.type
        name = ev.event
        touched: list[str] = []  # what changed: keys of _segments_by_dep
        if typ == "track" or typ == "page" or typ == "screen":
            if typ != "track":
                name = "$" + typ
            ts = ev.timestamp
            mid = ev.message_id
            day = self.day_of(ts)
            data_by_event = self._data_by_event
            if p.session_no < 0 or ts > p.session_last + userdata.SESSION_GAP_MS:
                p.session_no += 1
                touched.append("e:$sessions")
                if "$sessions" in data_by_event:
                    self._add(p, "$sessions", day, p.session_no, ts, mid, None)
            if ts > p.session_last:
                p.session_last = ts
            session = p.session_no
            # Counters and aggregates match track events by name and page and screen views
            # as `$page` and `$screen`. A track event that calls itself so is no view (the
            # SQL side reads those names as the view types): it matches only "*" aggregates.
            named: str | None = name
            if typ == "track" and (name == "$page" or name == "$screen"):
                named = None
            counters = self._counters_by_event.get(named) if named is not None else None
            aggs = self._aggs_by_event.get(named) if named is not None else None
            if aggs is None and typ == "track":  # "*" is any track event, not a view
                aggs = self._aggs_by_event.get("*")
            # Only what some definition reads is kept: the properties are decoded only
            # for an event whose name something reads.
            wanted = data_by_event.get(name)  # type: ignore[arg-type]
            props = ev.props() if len(ev.properties) > 2 and (counters or aggs or wanted) else {}
            touched.append("e:" + name)  # type: ignore[operator]
            if wanted is not None:
                own, fields = wanted
                if own:
                    self._add(p, name, day, session, ts, mid, None)  # type: ignore[arg-type]
                if fields and props:
                    found: list[tuple[str, Any]] = []
                    userdata.fields_of(name, props, found)  # type: ignore[arg-type]
                    for key, value in found:
                        if key in fields:
                            self._add(p, key, day, session, ts, mid, value)
            channel = ev.channel
            store_id = ev.store_id
            if counters is not None:
                for c_key, c_channel, c_store, where, dep in counters:
                    if (
                        (c_channel is None or c_channel == channel)
                        and (c_store is None or c_store == store_id)
                        and (not where or all(props.get(k) == v for k, v in where))
                    ):
                        buckets = p.counters.get(c_key)
                        if buckets is None:
                            buckets = p.counters[c_key] = {}
                        buckets[day] = buckets.get(day, 0) + 1
                        touched.append(dep)
            if aggs:
                for a_name, a_channels, a_store, where, prop, keep, dep in aggs:
                    if (
                        (a_channels is None or channel in a_channels)
                        and (a_store is None or a_store == store_id)
                        and (not where or all(props.get(k) == v for k, v in where))
                    ):
                        summary = p.computed.get(a_name)
                        if summary is None:
                            summary = p.computed[a_name] = userdata.new_summary()
                        for value in values_at(prop, channel, store_id, props) if prop else (None,):
                            userdata.add(summary, day, session, ts, mid, value, keep)
                        touched.append(dep)
        if not self.segments:
            return
        if is_new:
            affected: Iterable[int] = range(len(self._ordered))
        else:
            # only the segments something this event changed can change
            by_dep = self._segments_by_dep
            found: set[int] = set()
            for key in touched:
                at = by_dep.get(key)
                if at:
                    found.update(at)
            if traits_changed:
                found.update(self._segments_by_trait)
            if not found:
                return
            affected = found
        self._evaluate(p, affected, ev.received_at if now is None else now, ev.message_id, out)

    @staticmethod
    def _add(p: Person, key: str, day: int, session: int, ts: int, mid: str, value: Any) -> None:
        # No cap here (the on-read fold has `MAX_FIELDS`): only fields definitions read come.
        summary = p.data.get(key)
        if summary is None:
            summary = p.data[key] = userdata.new_summary()
        userdata.add(summary, day, session, ts, mid, value)

    # -- evaluation ----------------------------------------------------------------------

    def facts(self, p: Person, today: int) -> Facts:
        memo: dict[str, Any] = {}  # a computed trait is worked out once per evaluation

        def computed(name: str) -> Any:
            if name in memo:
                return memo[name]
            value = memo[name] = self.computed_value(p, name, today, None)
            return value

        return Facts(p.traits, p.counters, p.data, p.session_no, computed, p.segments)

    def computed_value(self, p: Person, name: str, today: int, facts: Facts | None) -> Any:
        trait = self.computed.get(name)
        if isinstance(trait, Aggregate):
            return aggregate_value(trait, p.computed.get(name), today, self.day_of)
        if isinstance(trait, Cases):
            f = facts or Facts(p.traits, p.counters, p.data, p.session_no)
            for check, value in trait.checks:
                if check(f, today):
                    return value
            return trait.default
        return None

    def computed_values(self, p: Person, now: int) -> dict[str, Any]:
        today = self.day_of(now)
        return {name: self.computed_value(p, name, today, None) for name in sorted(self.computed)}

    def evaluate_person(self, p: Person, segments: Iterable[Segment], now: int, cause: str, out: list[Effect]) -> None:
        """Recompute membership as of `now`, in dependency order; changes go on the timeline."""
        order = self._order_index
        self._evaluate(p, [order[seg.name] for seg in segments], now, cause, out)

    def _evaluate(self, p: Person, at: Iterable[int], now: int, cause: str, out: list[Effect]) -> None:
        """`evaluate_person` for the segments at these positions of `_ordered`."""
        today = self.day_of(now)
        facts = self.facts(p, today)
        ordered = self._ordered
        pending = sorted(at)  # dependency order
        queued = set(pending)
        building = self._building_at
        timed_at = self._timed_at
        dependents = self._dependents
        timed = False
        i = 0
        while i < len(pending):
            j = pending[i]
            i += 1
            if j in building:
                continue
            if j in timed_at:
                timed = True
            seg = ordered[j]
            name = seg.name
            inside = name in facts.segments
            now_in = seg.check(facts, today)
            if now_in == inside:
                continue
            if now_in:
                facts.segments.add(name)
                p.segments = [*p.segments, name]
            else:
                facts.segments.discard(name)
                p.segments = [s for s in p.segments if s != name]
            for dep in dependents.get(j, ()):  # segments that read this one, re-checked after it
                if dep not in queued:
                    queued.add(dep)
                    bisect.insort(pending, dep, lo=i)
            out.append((SegmentEntered if now_in else SegmentExited)(p.person_id, name, now, cause))
        # An event can bring a window edge earlier than the one scheduled (a buy today in
        # a 2-day window, with a 30-day window's edge pending), so the exact edge (a scan
        # of the person's buckets) is worked out on the first evaluation of the day; a
        # later one that day asks for a re-check tomorrow at the latest (no edge an event
        # of today brings can come sooner), which works out the exact one again.
        if timed:
            pid = p.person_id
            if self._edge_day == today and self._edge_checked.get(pid) == today:
                scheduled = self.next_check.get(pid)
                if scheduled is None or scheduled > today + 1:
                    out.append(TimerSet(pid, today + 1, today))
            else:
                out.append(TimerSet(pid, self._next_edge(p, today), today, exact=True))

    def commit(self, effects: Iterable[Effect]) -> None:
        """Apply what the engine decided to what it keeps across persons: segment sizes
        move with entries and exits, timers go into the timer index. (The step that
        decided only read this state; the runtime calls this after it.)"""
        sizes = self.sizes
        for e in effects:
            t = type(e)
            if t is SegmentEntered:
                sizes[e.segment] = sizes.get(e.segment, 0) + 1  # type: ignore[union-attr]
                if self.members_changed is not None:
                    self.members_changed.add(e.person_id)
            elif t is SegmentExited:
                if not e.removed:  # type: ignore[union-attr]  # a removed segment's size went with it
                    sizes[e.segment] = sizes.get(e.segment, 0) - 1  # type: ignore[union-attr]
                    if self.members_changed is not None:
                        self.members_changed.add(e.person_id)
            elif t is TimerSet:
                assert isinstance(e, TimerSet)
                if e.day is not None:
                    self._schedule(e.person_id, e.day)
                else:
                    self._clear_timer(e.person_id)
                if e.exact:
                    if self._edge_day != e.today:  # only today's entries are ever read: memory stays a day's
                        self._edge_checked.clear()
                        self._edge_day = e.today
                    self._edge_checked[e.person_id] = e.today

    def evaluate_all(self, persons: dict[str, Person], segments: list[Segment], now: int) -> list[Effect]:
        out: list[Effect] = []
        if not segments:
            return out
        for seg in segments:
            self._evaluated[seg.name] = self._version(seg.name)
        for p in persons.values():  # a store's persons are read one at a time
            self.evaluate_person(p, segments, now, f"define:{now}", out)
        return out

    # -- back-fill -----------------------------------------------------------------------

    def apply_backfill(
        self, backfill_id: str, rows: list[Any], cursor: str, done: bool, persons: Callable[[str], Person | None],
        all_persons: dict[str, Person], now: int,
    ) -> list[Effect]:  # fmt: skip
        """Add a chunk of history counted by SQL: counters [(person, day, n)], computed
        [(person, day, stats)], user data [(person, day, stats)] and, for the person's last
        two sessions, [(person, [session number], stats)]. Persons are the ids the events
        hold (merged ones resolve)."""
        bf = self.backfills.get(backfill_id)
        if bf is None:
            return []
        for pid, day, value in rows:
            p = persons(pid)
            if p is None:  # forgotten since
                continue
            if bf.kind == "counter":
                buckets = p.counters.setdefault(bf.key, {})
                buckets[day] = buckets.get(day, 0) + value
            elif bf.kind == "data":
                summary = p.data.get(bf.key)
                if summary is None:
                    summary = p.data[bf.key] = userdata.new_summary()
                if isinstance(day, int):
                    userdata.add_stats(summary, day, value)
                else:
                    userdata.add_session_stats(summary, day[0], value)
            else:
                summary = p.computed.get(bf.key)
                if summary is None:
                    summary = p.computed[bf.key] = userdata.new_summary()
                trait = self.computed.get(bf.key)
                keep = trait.keep_days if isinstance(trait, Aggregate) else userdata.KEEP_DAYS
                userdata.add_stats(summary, day, value, keep)
        bf.cursor = cursor
        bf.rows += len(rows)
        if not done:
            return []
        del self.backfills[backfill_id]
        return self._reindex(all_persons, 0, now)

    # -- time passing --------------------------------------------------------------------

    def _schedule(self, pid: str, day: int) -> None:
        old = self.next_check.get(pid)
        if old == day:
            return
        if old is not None:
            self.due.get(old, set()).discard(pid)
        self.next_check[pid] = day
        self.due.setdefault(day, set()).add(pid)
        if self.timer_changed is not None:
            self.timer_changed.add(pid)

    def _clear_timer(self, pid: str) -> None:
        old = self.next_check.pop(pid, None)
        if old is not None:
            self.due.get(old, set()).discard(pid)
            if self.timer_changed is not None:
                self.timer_changed.add(pid)

    def unschedule(self, pid: str) -> None:
        self._edge_checked.pop(pid, None)
        old = self.next_check.pop(pid, None)
        if old is not None:
            self.due.get(old, set()).discard(pid)
            if self.timer_changed is not None:
                self.timer_changed.add(pid)

    def timer_changes(self) -> dict[str, int | None]:
        """The timers changed since the last call (None: none any more), for a checkpoint."""
        if not self.timer_changed:
            return {}
        out = {pid: self.next_check.get(pid) for pid in self.timer_changed}
        self.timer_changed.clear()
        self._timers_saving |= out.keys()
        return out

    def timers_committed(self, written: Iterable[str]) -> None:
        """The store holds these timers now: memory lets go of the ones unchanged since."""
        changed = self.timer_changed or set()
        for pid in written:
            self._timers_saving.discard(pid)
            if pid in changed:
                continue
            day = self.next_check.pop(pid, None)
            if day is not None:
                at = self.due.get(day)
                if at is not None:
                    at.discard(pid)
                    if not at:
                        del self.due[day]

    def timers_aborted(self, written: Iterable[str]) -> None:
        """A checkpoint failed: its timers go with the next one."""
        for pid in written:
            self._timers_saving.discard(pid)
        if self.timer_changed is not None:
            self.timer_changed.update(written)

    def adopt(self, p: Person) -> None:
        """A person read back from the store: drop what no definition reads any more."""
        for key in [k for k in p.counters if k not in self._counters]:
            del p.counters[key]
        for key in [k for k in p.data if k not in self.data_fields]:
            del p.data[key]
        for key in [k for k in p.computed if f"computed:{k}" not in self.needs]:
            del p.computed[key]

    def due_count(self, now: int) -> int:
        """Persons due a re-check by `now` (at least; the store's may count some twice)."""
        today = self.day_of(now)
        n = sum(len(ps) for day, ps in self.due.items() if day <= today)
        if self.stored_due is not None and self._timed:
            n += sum(1 for _ in self.stored_due(today))
        return n

    def _due(self, today: int) -> list[str]:
        """The persons due by `today`, taken off the timer: from memory, and from the
        store's timer index for those memory has no newer word on."""
        found: set[str] = set()
        for day in [d for d in self.due if d <= today]:
            found |= self.due.pop(day)
        for pid in found:
            self.next_check.pop(pid, None)
        if self.stored_due is not None:
            newer = (self.timer_changed or set()) | self._timers_saving | self.next_check.keys()
            found.update(pid for pid, _ in self.stored_due(today) if pid not in newer)
        return sorted(found)

    def tick(self, now: int, persons: Callable[[str], Person | None]) -> list[Effect]:
        """Re-check the persons whose next window edge is today or earlier."""
        today = self.day_of(now)
        out: list[Effect] = []
        for pid in self._due(today):
            if self.timer_changed is not None:  # its stored timer is due: it changes or goes
                self.timer_changed.add(pid)
            p = persons(pid)
            if p is None:  # gone since: its timer goes too (the store's row with it)
                out.append(TimerSet(pid, None, today))
                continue
            self.evaluate_person(p, self._timed, now, f"tick:{now}", out)
            last = out[-1] if out else None
            if isinstance(last, TimerSet) and last.person_id == pid:  # the exact edge below decides
                out.pop()
            out.append(TimerSet(pid, self._next_edge(p, today), today))
        return out

    def _timed_leaf_conditions(self) -> list[Rule]:
        """The conditions of the time-based segments that time can change, once each."""
        seen: dict[Any, Rule] = {}

        def walk(rule: Rule) -> None:
            if isinstance(rule, Did) and rule.within_days is not None:
                seen.setdefault(("did", rule.key, rule.within_days), rule)
            elif isinstance(rule, FirstDid):
                seen.setdefault(("first", rule.key, rule.within_days), rule)
            elif isinstance(rule, DataIs) and rule.window not in ("all_time", "this_session", "previous_session"):
                seen.setdefault(("data", rule.field), rule)
            elif isinstance(rule, ComputedIs):
                c = self.computed.get(rule.name)
                if isinstance(c, Aggregate) and c.timed:
                    seen.setdefault(("computed", rule.name), rule)
                elif isinstance(c, Cases):
                    for r, _ in c.cases:
                        walk(r)
            elif isinstance(rule, InSegment) and rule.name in self.segments:
                walk(self.segments[rule.name].rule)
            for child in getattr(rule, "rules", ()):
                walk(child)
            if hasattr(rule, "rule"):
                walk(rule.rule)  # type: ignore[union-attr]

        for seg in self._timed:
            walk(seg.rule)
        return list(seen.values())

    def _next_edge(self, p: Person, today: int) -> int | None:
        """The first day after today on which a time-based condition of p could change."""
        best: int | None = None
        tomorrow = today + 1
        for rule in self._timed_leaves:
            if isinstance(rule, Did):
                within = rule.within_days
                assert within is not None
                for d in p.counters.get(rule.key) or ():
                    edge = d + within if d > today - within else d
                    if edge > today and (best is None or edge < best):
                        best = edge
            elif isinstance(rule, FirstDid):
                days = p.counters.get(rule.key)
                if days:
                    edge = min(days) + rule.within_days
                    if edge > today and (best is None or edge < best):
                        best = edge
            elif isinstance(rule, DataIs):
                summary = p.data.get(rule.field)
                if summary is not None and any(d >= today - userdata.KEEP_DAYS for d in summary[userdata.DAYS]):
                    best = tomorrow
            elif isinstance(rule, ComputedIs) and p.computed.get(rule.name):
                best = tomorrow
            if best == tomorrow:  # nothing can come sooner
                break
        return best

    # -- state ---------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "definitions": [d.to_dict() | {"defined_at": d.defined_at} for d in self.definitions.values()],
            "backfills": [
                {
                    "kind": b.kind,
                    "key": b.key,
                    "upto_seq": b.upto_seq,
                    "cursor": b.cursor,
                    "rows": b.rows,
                    "spec": b.spec,
                }
                for b in self.backfills.values()
            ],
            "evaluated": self._evaluated,
            "sizes": self.sizes,
        }

    def load_state(
        self, state: dict[str, Any], persons: dict[str, Person], now: int,
        timers: Iterable[tuple[str, int]] | None = None,
    ) -> None:  # fmt: skip
        """Restore definitions from a checkpoint (the persons already hold their counts),
        and the timers: from `timers` when the store keeps them, else from the persons."""
        for d in state.get("definitions", ()):
            self.definitions[(d["kind"], d["name"])] = Definition(
                d["kind"], d["name"], d["body"], d["seq"], d["version"], d.get("defined_at", 0)
            )
        # A definition stored under older, looser rules that no longer parses is skipped
        # (and reported in `skipped`), so the workspace opens without it.
        for kind in kinds.KINDS:
            for (k, name), d in list(self.definitions.items()):
                if k != kind:
                    continue
                try:
                    self._install(kind, name, self.parse(kind, name, d.body))
                except InvalidInput as exc:
                    del self.definitions[(k, name)]
                    self.skipped.append((kind, name, exc.message))
        for k, name in [key for key in self.definitions if key[0] not in kinds.KINDS]:
            del self.definitions[(k, name)]
            self.skipped.append((k, name, f"{k!r} is not a kind this version knows"))
        self.backfills = {
            f"{b['kind']}:{b['key']}": Backfill(b["kind"], b["key"], b["upto_seq"], b["cursor"], b["rows"], b["spec"])
            for b in state.get("backfills", ())
        }
        self._evaluated = dict(state.get("evaluated", {}))
        if "sizes" in state:
            self.sizes = {k: v for k, v in state["sizes"].items() if k in self.segments}
        else:  # a checkpoint from before sizes were kept: count once
            self.sizes = self.count_members(persons)
        self.commit(self._reindex(persons, 0, now))  # seq 0: nothing new to back-fill
        if timers is None:
            self.reschedule_all(persons, now)
            return
        self.due.clear()
        self.next_check.clear()
        for pid, day in timers:
            self.next_check[pid] = day
            self.due.setdefault(day, set()).add(pid)

    def count_members(self, persons: dict[str, Person]) -> dict[str, int]:
        """Members of every segment, by a pass over every person (what `sizes` keeps)."""
        sizes: dict[str, int] = {}
        for p in persons.values():
            for name in p.segments:
                sizes[name] = sizes.get(name, 0) + 1
        return sizes

    def joined(self, segments: Iterable[str], sign: int) -> None:
        """Persons holding `segments` came (+1: loaded, rebuilt) or went (-1: merged
        away, forgotten, replaced)."""
        sizes = self.sizes
        for name in segments:
            sizes[name] = sizes.get(name, 0) + sign

    def reschedule_all(self, persons: dict[str, Person], now: int) -> None:
        """Rebuild the timer from the persons (after loading a checkpoint)."""
        self.due.clear()
        self.next_check.clear()
        if not self._timed:
            return
        today = self.day_of(now)
        for p in persons.values():
            if (edge := self._next_edge(p, today - 1)) is not None:
                self._schedule(p.person_id, edge)


def _held(p: Person, kind: str) -> dict[str, Any]:
    """Where a person holds what a need of `kind` keeps."""
    if kind == "counter":
        return p.counters
    if kind == "data":
        return p.data
    return p.computed
