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
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from . import userdata
from .computed import Aggregate, Cases, ComputedTrait, aggregate_value, parse_computed, values_at
from .errors import FieldError, InvalidInput
from .events import Event
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
    parse_rule,
)

__all__ = ["KINDS", "DayCache", "Definition", "Live", "Marker"]

KINDS = ("segment", "computed_trait")
_DAY_MS = 86_400_000


@dataclass(slots=True)
class Marker:
    """A system entry on a person's timeline (a merge, a conflict, a segment entry)."""

    person_id: str
    type: str  # "merge" | "identity_conflict" | "segment_enter" | "segment_exit"
    timestamp: int
    message_id: str
    properties: dict[str, Any]


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
        self._counters: dict[str, Did] = {}  # live counter key -> condition
        #: the user data fields some definition reads: only those are kept live
        self.data_fields: frozenset[str] = frozenset()
        #: event name -> (its own summary is read, the fields of it that are read)
        self._data_by_event: dict[str, tuple[bool, frozenset[str]]] = {}
        self._counters_by_event: dict[str, list[tuple[str, str | None, str | None, tuple[Any, ...]]]] = {}
        self._aggs_by_event: dict[str, list[tuple[Any, ...]]] = {}
        #: what can change a segment -> the segments: "c:" a counter was bumped, "a:" a computed
        #: aggregate took a value, "e:" an event of that name came (user data fields)
        self._segments_by_dep: dict[str, list[Segment]] = {}
        self._segments_by_trait: list[Segment] = []
        self._dependents: dict[str, list[str]] = {}  # segment -> segments that read it
        self._building: set[str] = set()  # segments waiting for a back-fill
        self._timed: list[Segment] = []
        self._timed_names: set[str] = set()
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
        #: persons whose timer changed since the last checkpoint (None: not tracked)
        self.timer_changed: set[str] | None = None

    # -- definitions ---------------------------------------------------------------------

    def parse(self, kind: str, name: str, body: Any) -> Segment | ComputedTrait:
        """Validate a definition against the others (names it reads, cycles)."""
        if kind not in KINDS:
            raise InvalidInput.for_field("kind", f"must be one of {', '.join(KINDS)}")
        if kind == "segment":
            if not isinstance(body, dict) or "rule" not in body:
                raise InvalidInput.for_field("rule", "a segment needs a rule")
            seg = Segment(name, parse_rule(body["rule"]))
            errors = [FieldError("rule", f"reads computed trait {c!r}, which is not defined")
                      for c in sorted(seg.computed) if c not in self.computed]  # fmt: skip
            errors += [FieldError("rule", f"reads segment {s!r}, which is not defined")
                       for s in sorted(seg.segments) if s not in self.segments and s != name]  # fmt: skip
            if name in self._reads_closure(seg.segments):
                errors.append(FieldError("rule", f"segment {name!r} would read itself"))
            if errors:
                raise InvalidInput.for_fields(errors)
            return seg
        return parse_computed({**body, "name": name} if isinstance(body, dict) else body)

    def _reads_closure(self, names: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(names)
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            if n in self.segments:
                todo.extend(self.segments[n].segments)
        return seen

    def define(
        self, kind: str, name: str, body: dict[str, Any], seq: int, persons: dict[str, Person], now: int
    ) -> list[Marker]:
        parsed = self.parse(kind, name, body)
        old = self.definitions.get((kind, name))
        if old is not None and old.body == body:
            return []
        self.definitions[(kind, name)] = Definition(kind, name, body, seq, old.version + 1 if old else 1, now)
        if kind == "computed_trait":
            assert not isinstance(parsed, Segment)
            self.computed[name] = parsed
            if isinstance(parsed, Aggregate):
                for p in persons.values():
                    if p.computed.pop(name, None) is not None:
                        self.touched.add(p.person_id)
                self.backfills.pop(f"computed:{name}", None)
                if persons:  # no persons yet: no history to count
                    self.backfills[f"computed:{name}"] = Backfill("computed", name, seq, spec=body)
        else:
            assert isinstance(parsed, Segment)
            self.segments[name] = parsed
        return self._reindex(persons, seq, now)

    def undefine_check(self, kind: str, name: str) -> None:
        """Refuse to remove what another segment reads."""
        readers = [s.name for s in self.segments.values() if name in (s.segments if kind == "segment" else s.computed)]
        if readers:
            raise InvalidInput.for_field("name", f"{name!r} is read by segment {readers[0]!r}; change that first")

    def undefine(self, kind: str, name: str, persons: dict[str, Person], now: int) -> list[Marker]:
        if (kind, name) not in self.definitions:
            return []
        self.undefine_check(kind, name)
        del self.definitions[(kind, name)]
        markers: list[Marker] = []
        if kind == "segment":
            del self.segments[name]
            self._evaluated.pop(name, None)
            self.sizes.pop(name, None)
            for p in persons.values():
                if name in p.segments:  # members leave, on their timelines too
                    p.segments = [s for s in p.segments if s != name]
                    markers.append(
                        Marker(p.person_id, "segment_exit", now, f"undefine:{now}", {"segment": name, "removed": True})
                    )
        else:
            del self.computed[name]
            self.backfills.pop(f"computed:{name}", None)
            for p in persons.values():
                if p.computed.pop(name, None) is not None:
                    self.touched.add(p.person_id)
        markers += self._reindex(persons, 0, now)
        return markers

    def _reindex(self, persons: dict[str, Person], seq: int, now: int) -> list[Marker]:
        """Rebuild the indexes; new counters get a back-fill; ready segments a full pass."""
        ordered = self._order()
        self.segments = {n: self.segments[n] for n in ordered}
        readers = [*self.segments.values(), *(c.reads() for c in self.computed.values() if isinstance(c, Cases))]
        wanted: dict[str, Did] = {}
        for seg in readers:
            for cond in seg.counters:
                wanted.setdefault(cond.key, Did(cond.event, cond.channel, cond.store_id, cond.where))
        wanted_data = frozenset(f for seg in readers for f in seg.data)
        gone = self.data_fields - wanted_data
        for key in gone:
            self.backfills.pop(f"data:{key}", None)
        dropped = set(self._counters) - set(wanted)
        for key in dropped:
            self.backfills.pop(f"counter:{key}", None)
        if gone or dropped:  # one pass over every person for both
            for p in persons.values():
                for held, keys in ((p.data, gone), (p.counters, dropped)):
                    for key in keys:
                        if held.pop(key, None) is not None:
                            self.touched.add(p.person_id)
        for key in sorted(wanted_data - self.data_fields):
            if seq and persons:  # no persons yet: no history to count
                self.backfills[f"data:{key}"] = Backfill("data", key, seq, spec={"field": key})
        self.data_fields = wanted_data
        by_name: dict[str, tuple[bool, set[str]]] = {}
        for key in wanted_data:
            name, dot, _ = key.partition(".")
            own, fields = by_name.setdefault(name, (False, set()))
            by_name[name] = (own or not dot, fields | ({key} if dot else set()))
        self._data_by_event = {name: (own, frozenset(fields)) for name, (own, fields) in by_name.items()}
        for key, cond in wanted.items():
            if key not in self._counters and seq and persons:  # no persons yet: no history to count
                spec = {"event": cond.event, "channel": cond.channel, "store_id": cond.store_id,
                        "where": dict(cond.where)}  # fmt: skip
                self.backfills[f"counter:{key}"] = Backfill("counter", key, seq, spec=spec)
        self._counters = wanted
        # What an event is matched against, precompiled: (counter key, channel, store, where)
        by_event: dict[str, list[tuple[str, str | None, str | None, tuple[tuple[str, Any], ...]]]] = {}
        for key, cond in wanted.items():
            by_event.setdefault(cond.event, []).append((key, cond.channel, cond.store_id, cond.where, "c:" + key))
        self._counters_by_event = by_event
        # (trait, channels, store, where, property, days kept); "*" traits join every track
        # event's list (not the views': `$page`, `$screen`)
        star = [a for a in self.computed.values() if isinstance(a, Aggregate) and a.event == "*"]
        aggs: dict[str, list[tuple[Any, ...]]] = {}
        for c in self.computed.values():
            if isinstance(c, Aggregate) and c.event != "*":
                aggs.setdefault(c.event, [])
        for event in [*aggs, "*"]:
            aggs[event] = [
                (a.name, frozenset(a.channels) or None, a.store_id, a.where, a.prop, a.keep_days, "a:" + a.name)
                for a in self.computed.values()
                if isinstance(a, Aggregate) and (a.event == event or (a in star and event not in VIEWS))
            ]
        self._aggs_by_event = aggs
        self._building = {n for n in self.segments if self._needs_backfill(self.segments[n])}
        seg_by_dep: dict[str, list[Segment]] = {}
        self._dependents = {}
        for seg in self.segments.values():
            for dep in self._deps_of(seg):
                seg_by_dep.setdefault(dep, []).append(seg)
            for other in seg.segments:
                self._dependents.setdefault(other, []).append(seg.name)
        self._segments_by_dep = seg_by_dep
        self._segments_by_trait = [s for s in self.segments.values() if s.traits or self._reads_cases(s)]
        self._timed = [s for s in self.segments.values() if self._is_timed(s)]
        self._timed_names = {s.name for s in self._timed}
        self._timed_leaves = self._timed_leaf_conditions()
        self._order_index = {name: i for i, name in enumerate(self.segments)}
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
        return bool(self._pending(seg))

    def pending_for(self, kind: str, name: str) -> list[Backfill]:
        """The back-fills a definition waits for (none: it is ready)."""
        if kind == "computed_trait":
            bf = self.backfills.get(f"computed:{name}")
            return [bf] if bf is not None else []
        seg = self.segments.get(name)
        return [] if seg is None else self._pending(seg)

    def _pending(self, seg: Segment) -> list[Backfill]:
        ids: dict[str, None] = {}  # ordered, once each

        def walk(s: Segment) -> None:
            ids.update(dict.fromkeys(f"counter:{c.key}" for c in s.counters))
            ids.update(dict.fromkeys(f"data:{f}" for f in sorted(s.data)))
            for name in s.computed:
                c = self.computed.get(name)
                if isinstance(c, Aggregate):
                    ids[f"computed:{name}"] = None
                elif isinstance(c, Cases):
                    reads = c.reads()
                    ids.update(dict.fromkeys(f"counter:{d.key}" for d in reads.counters))
                    ids.update(dict.fromkeys(f"data:{f}" for f in sorted(reads.data)))
            for other in s.segments:
                if other in self.segments:
                    walk(self.segments[other])

        walk(seg)
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

    def observe(self, p: Person, ev: Event, traits_changed: bool, is_new: bool, out: list[Marker]) -> None:
        """Fold one event into the person, then re-evaluate what it can change."""
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
            affected: Iterable[Segment] = self.segments.values()
        else:
            # only the segments something this event changed can change
            by_dep = self._segments_by_dep
            found: list[Segment] = []
            for key in touched:
                segs = by_dep.get(key)
                if segs:
                    found += [s for s in segs if s not in found] if found else segs
            if traits_changed:
                found += [s for s in self._segments_by_trait if s not in found]
            if not found:
                return
            affected = found
        self.evaluate_person(p, affected, ev.received_at, ev.message_id, out)

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

    def evaluate_person(self, p: Person, segments: Iterable[Segment], now: int, cause: str, out: list[Marker]) -> None:
        """Recompute membership as of `now`, in dependency order; changes go on the timeline."""
        today = self.day_of(now)
        facts = self.facts(p, today)
        order = self._order_index
        pending = sorted(segments, key=lambda seg: order[seg.name])  # dependency order
        queued = {seg.name for seg in pending}
        building = self._building
        timed_names = self._timed_names
        timed = False
        i = 0
        while i < len(pending):
            seg = pending[i]
            i += 1
            name = seg.name
            if name in building:
                continue
            if name in timed_names:
                timed = True
            inside = name in facts.segments
            now_in = seg.check(facts, today)
            if now_in == inside:
                continue
            sizes = self.sizes
            if now_in:
                facts.segments.add(name)
                p.segments = [*p.segments, name]
                sizes[name] = sizes.get(name, 0) + 1
            else:
                facts.segments.discard(name)
                p.segments = [s for s in p.segments if s != name]
                sizes[name] = sizes.get(name, 0) - 1
            for dep in self._dependents.get(name, ()):  # segments that read this one, re-checked after it
                if dep not in queued:
                    queued.add(dep)
                    bisect.insort(pending, self.segments[dep], lo=i, key=lambda seg: order[seg.name])
            out.append(
                Marker(p.person_id, "segment_enter" if now_in else "segment_exit", now, cause, {"segment": name})
            )
        # A new event never brings a window edge earlier than one already scheduled, so
        # the (bucket-scanning) edge is only computed when none is.
        # The exact edge (a scan of the person's buckets) at most once a person a day; a
        # later event that day schedules a re-check tomorrow, which finds the exact one.
        if timed and p.person_id not in self.next_check:
            if self._edge_day != today:  # only today's entries are ever read: memory stays a day's
                self._edge_checked.clear()
                self._edge_day = today
            if self._edge_checked.get(p.person_id) == today:
                self._schedule(p.person_id, today + 1)
            else:
                self._edge_checked[p.person_id] = today
                if (edge := self._next_edge(p, today)) is not None:
                    self._schedule(p.person_id, edge)

    def evaluate_all(self, persons: dict[str, Person], segments: list[Segment], now: int) -> list[Marker]:
        out: list[Marker] = []
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
    ) -> list[Marker]:  # fmt: skip
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
        return out

    def adopt(self, p: Person) -> None:
        """A person read back from the store: drop what no definition reads any more."""
        for key in [k for k in p.counters if k not in self._counters]:
            del p.counters[key]
        for key in [k for k in p.data if k not in self.data_fields]:
            del p.data[key]
        for key in [k for k in p.computed if k not in self.computed]:
            del p.computed[key]

    def due_count(self, now: int) -> int:
        today = self.day_of(now)
        return sum(len(ps) for day, ps in self.due.items() if day <= today)

    def tick(self, now: int, persons: Callable[[str], Person | None]) -> list[Marker]:
        """Re-check the persons whose next window edge is today or earlier."""
        today = self.day_of(now)
        out: list[Marker] = []
        for day in sorted(d for d in self.due if d <= today):
            for pid in sorted(self.due.pop(day)):
                self.next_check.pop(pid, None)
                p = persons(pid)
                if p is None:
                    continue
                self.evaluate_person(p, self._timed, now, f"tick:{now}", out)
                edge = self._next_edge(p, today)
                if edge is not None:
                    self._schedule(p.person_id, edge)
                else:
                    self.unschedule(p.person_id)
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
        for kind in ("computed_trait", "segment"):
            for (k, name), d in list(self.definitions.items()):
                if k != kind:
                    continue
                try:
                    if kind == "computed_trait":
                        self.computed[name] = parse_computed({**d.body, "name": name})
                    else:
                        self.segments[name] = Segment(name, parse_rule(d.body["rule"]))
                except (InvalidInput, KeyError, TypeError) as exc:
                    del self.definitions[(k, name)]
                    self.skipped.append((kind, name, getattr(exc, "message", None) or repr(exc)))
        self.backfills = {
            f"{b['kind']}:{b['key']}": Backfill(b["kind"], b["key"], b["upto_seq"], b["cursor"], b["rows"], b["spec"])
            for b in state.get("backfills", ())
        }
        self._evaluated = dict(state.get("evaluated", {}))
        if "sizes" in state:
            self.sizes = {k: v for k, v in state["sizes"].items() if k in self.segments}
        else:  # a checkpoint from before sizes were kept: count once
            self.sizes = self.count_members(persons)
        self._reindex(persons, 0, now)  # seq 0: nothing new to back-fill
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
