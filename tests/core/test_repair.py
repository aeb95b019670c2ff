"""An event the engine fails on is refused alone: its persons are rebuilt as if it never came.

The property: whatever the history (merges, conflicts, aliases, user data, segments),
wherever the checkpoint falls and wherever an event fails (before any change, halfway
through its user data, in the middle of a merge or an attach), the engine after the
repair equals an engine that never saw the failing events — persons, identifier index,
aliases and timers alike.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsunagu.core import engine as engine_module
from tsunagu.core import people as people_module
from tsunagu.core.engine import Engine, EventFailed
from tsunagu.core.events import Event
from tsunagu.core.live import Live
from tsunagu.core.people import Person
from tsunagu.core.repair import TailRecord, repair, suspects_of

NOW = 1_760_000_000_000
DAY = 86_400_000
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(Person)

DEFINITIONS = [
    ("computed_trait", "spend", {"event": "buy", "agg": "sum", "property": "revenue"}),
    ("segment", "buyers", {"rule": {"did": "buy", "within_days": 7}}),
    ("segment", "big", {"rule": {"computed": "spend", "op": "gte", "value": 5000}}),
    ("segment", "gold", {"rule": {"trait": "rank", "op": "eq", "value": "gold"}}),
]


class Boom(RuntimeError):
    """The injected engine bug."""


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    events: list[Event] = []
    for i in range(draw(st.integers(2, 24))):
        kind = draw(st.sampled_from(["track", "track", "page", "identify", "identify", "alias"]))
        uid = draw(st.sampled_from([None, "U1", "U2", "U3"]))
        aid = draw(st.sampled_from(["a1", "a2", "a3", "a4", "a5"]))
        ts = NOW - draw(st.integers(0, 20)) * DAY + i
        traits: dict[str, Any] = {}
        props = b"{}"
        name = None
        prev = None
        if kind == "track":
            name = draw(st.sampled_from(["view", "buy", "cart"]))
            revenue = draw(st.one_of(st.integers(-10, 9000), st.floats(0, 100, allow_nan=False), st.just("x")))
            props = msgspec.json.encode({"revenue": revenue, "sku": draw(st.sampled_from(["A", "B", "C"]))})
        elif kind == "page":
            props = msgspec.json.encode({"path": draw(st.sampled_from(["/", "/a", "/b"]))})
        elif kind == "identify":
            traits = {"rank": draw(st.sampled_from(["gold", "silver"]))}
            if draw(st.booleans()):
                traits["email"] = draw(st.sampled_from(["x@example.jp", "y@example.jp"]))
        else:
            uid = uid or "U1"
            prev = aid
        events.append(
            Event(
                f"m{i}",
                kind,
                name,
                uid,
                None if kind == "alias" else aid,
                ts,
                ts,
                "web",
                None,
                props,
                traits,
                b"{}",
                prev,
            )
        )
    return events


def state(engine: Engine) -> dict[str, Any]:
    """Everything the engine holds. A conflict record names the other person; the replay
    names them as they are now (merged since: the survivor), which is the same person."""

    def canonical(p: Person) -> bytes:
        conflicts = [c | {"person_id": engine.canonical(c["person_id"]) or c["person_id"]} if "person_id" in c else c
                     for c in p.conflicts]  # fmt: skip
        return _enc.encode(msgspec.structs.replace(p, conflicts=conflicts))

    return {
        "persons": {pid: canonical(p) for pid, p in sorted(engine.persons.items())},
        "index": dict(sorted(engine.index.items())),
        "aliases": dict(sorted(engine.aliases.items())),
        "sizes": _sizes(engine),
    }


def _sizes(engine: Engine) -> dict[str, int]:
    """The sizes kept as memberships change, which must be the members counted."""
    kept = {k: n for k, n in sorted(engine.live.sizes.items()) if n}
    assert kept == dict(sorted(engine.live.count_members(engine.persons).items()))
    return kept


def assert_timers_kept(engine: Engine) -> None:
    """Timers are re-check hints rebuilt the way a restart rebuilds them, so their days may
    differ from the reference's; but a person a window edge can still change has one."""
    today = engine.live.day_of(NOW)
    for pid, person in engine.persons.items():
        if engine.live._next_edge(person, today) is not None:
            assert pid in engine.live.next_check, pid


def fresh_engine() -> Engine:
    engine = Engine(namespace="ws")
    for seq, (kind, name, body) in enumerate(DEFINITIONS, start=1):
        engine.define(kind, name, body, seq, NOW)
    return engine


def inject(monkeypatch: pytest.MonkeyPatch, poisoned: dict[str, str]) -> None:
    """Make the engine fail on the poisoned events, at the point each names."""
    observe = Live.observe
    attach = Engine._attach
    merge_into = people_module.merge_into

    def failing_observe(self: Live, p: Person, ev: Event, *args: Any) -> None:
        where = poisoned.get(ev.message_id)
        if where == "before":
            raise Boom(ev.message_id)
        observe(self, p, ev, *args)
        if where == "after":
            raise Boom(ev.message_id)

    current: list[str] = []

    def failing_attach(self: Engine, person: Person, key: str) -> None:
        attach(self, person, key)
        if current and poisoned.get(current[-1]) == "attach":
            raise Boom(current[-1])

    def failing_merge(survivor: Person, loser: Person) -> None:
        merge_into(survivor, loser)
        if current and poisoned.get(current[-1]) == "merge":
            raise Boom(current[-1])

    link = Engine._link

    def tracking_link(self: Engine, ev: Event, keys: list[str], out: Any) -> str:
        current.append(ev.message_id)
        try:
            return link(self, ev, keys, out)
        finally:
            current.pop()

    monkeypatch.setattr(Live, "observe", failing_observe)
    monkeypatch.setattr(Engine, "_attach", failing_attach)
    monkeypatch.setattr(Engine, "_link", tracking_link)
    monkeypatch.setattr(engine_module, "merge_into", failing_merge)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), events=histories())
def test_a_failed_event_leaves_the_engine_as_if_it_never_came(
    monkeypatch: pytest.MonkeyPatch, data: st.DataObject, events: list[Event]
) -> None:
    poisoned = {
        e.message_id: data.draw(st.sampled_from(["before", "after", "attach", "merge"]))
        for e in events
        if data.draw(st.integers(0, 4)) == 0
    }
    checkpoint_at = data.draw(st.integers(0, len(events)))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(events) - 1)), max_size=4)))
    chunks = [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True) if events[a:b]]

    refused: set[str] = set()  # the poisoned events that did fail (a "merge" fails only in a merge)
    with monkeypatch.context() as m:
        inject(m, poisoned)
        engine = fresh_engine()
        checkpoint: tuple[list[bytes], dict[str, Any]] | None = None
        tail: list[TailRecord] = []
        seen = 0
        for chunk in chunks:
            rest = chunk
            while rest:
                if checkpoint is None and seen >= checkpoint_at:
                    checkpoint = ([_enc.encode(p) for p in engine.persons.values()], engine.live.to_state())
                    tail = []
                try:
                    applied = engine.apply(rest)
                except EventFailed as failure:
                    assert isinstance(failure.error, Boom)
                    refused.add(failure.event.message_id)
                    before = TailRecord("events", rest[: failure.index], failure.applied.person_ids)
                    suspects = suspects_of(engine, failure.event, failure.person_id)
                    blobs, live = checkpoint if checkpoint is not None else ([], {})
                    persons = [p for p in map(_dec.decode, blobs) if p.person_id in suspects]
                    ok = repair(
                        engine, suspects, persons, live if checkpoint is not None else engine_live_at_start(),
                        iter([*tail, before]), {failure.event.message_id}, NOW,
                    )  # fmt: skip
                    assert ok
                    tail.append(before)
                    seen += failure.index + 1
                    rest = rest[failure.index + 1 :]
                    continue
                tail.append(TailRecord("events", rest, applied.person_ids))
                seen += len(rest)
                rest = []
    reference = fresh_engine()
    for ev in events:
        if ev.message_id not in refused:
            reference.apply([ev])
    if state(engine) != state(reference):
        explain_difference(engine, reference)
    assert state(engine) == state(reference)
    assert_timers_kept(engine)


def explain_difference(engine: Engine, reference: Engine) -> None:
    for pid in sorted(set(engine.persons) | set(reference.persons)):
        a = msgspec.to_builtins(engine.persons.get(pid))
        b = msgspec.to_builtins(reference.persons.get(pid))
        if a != b:
            diff = (
                {k: (a.get(k), b.get(k)) for k in (a or b) if (a or {}).get(k) != (b or {}).get(k)}
                if a and b
                else (a, b)
            )
            print("DIFF", pid, diff)


def engine_live_at_start() -> dict[str, Any]:
    """With no checkpoint yet, the definitions as they stood before any event."""
    return fresh_engine().live.to_state()


def test_a_tail_with_a_definition_change_is_left_to_a_full_rebuild() -> None:
    engine = fresh_engine()
    ev = Event("m1", "track", "view", "U1", None, NOW, NOW, "web", None, b"{}", {}, b"{}")
    engine.apply([ev])
    define = TailRecord("define", body={"kind": "segment", "name": "x", "body": {}, "now": NOW})
    before = state(engine)
    assert not repair(engine, {"p"}, [], engine.live.to_state(), iter([define]), set(), NOW)
    assert state(engine) == before
