"""Identity resolution: merges in any order give the same people, traits and timelines."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from tsunagu.core.effects import IdentityConflict, Merged
from tsunagu.core.engine import Engine
from tsunagu.core.events import Event


def ev(
    mid: str,
    typ: str,
    *,
    uid: str | None = None,
    aid: str | None = None,
    ts: int = 0,
    traits: dict[str, Any] | None = None,
    prev: str | None = None,
    channel: str = "web",
) -> Event:
    name = "view" if typ == "track" else None
    return Event(mid, typ, name, uid, aid, ts, ts, channel, None, b"{}", traits or {}, b"{}", prev)


def outcome(engine: Engine, events: list[Event], pids: list[str]) -> dict[frozenset[str], dict[str, Any]]:
    """Everything that must not depend on arrival order, keyed by each person's identifiers."""
    out: dict[frozenset[str], dict[str, Any]] = {}
    by_person: dict[str, list[tuple[int, str]]] = {}
    for e, pid in zip(events, pids, strict=True):
        canonical = engine.canonical(pid)
        assert canonical is not None
        by_person.setdefault(canonical, []).append((e.timestamp, e.message_id))
    for p in engine.persons.values():
        key = frozenset(f"{t}:{v}" for t, vs in p.identifiers.items() for v in vs)
        out[key] = {
            "traits": p.traits,
            "first_seen": p.first_seen,
            "last_seen": p.last_seen,
            "event_count": p.event_count,
            "channels": p.channels,
            "timeline": sorted(by_person.get(p.person_id, [])),
        }
    return out


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """Histories of a few real people, each with their own ids, so no link conflicts."""
    events: list[Event] = []
    n_people = draw(st.integers(1, 4))
    ts = iter(range(1_000, 10**9, 1_000))
    mid = iter(range(10**6))
    for k in range(n_people):
        member = draw(st.booleans())
        uid = f"U{k}" if member else None
        anons = [f"a{k}-{j}" for j in range(draw(st.integers(1, 3)))]
        email = f"p{k}@example.jp" if draw(st.booleans()) else None
        for _ in range(draw(st.integers(1, 8))):
            kind = draw(st.sampled_from(["track-anon", "track-user", "identify", "identify-email", "alias"]))
            a = draw(st.sampled_from(anons))
            t = next(ts)
            m = f"m{next(mid)}"
            channel = draw(st.sampled_from(["web", "app", "store"]))
            if kind == "track-anon" or (uid is None and kind in ("track-user", "alias")):
                events.append(ev(m, "track", aid=a, ts=t, channel=channel))
            elif kind == "track-user":
                events.append(ev(m, "track", uid=uid, ts=t, channel=channel))
            elif kind == "identify":
                rank = draw(st.sampled_from(["gold", "silver", "regular"]))
                traits: dict[str, Any] = {"rank": rank}
                if draw(st.booleans()):
                    traits["$set_once"] = {"first_rank": rank}
                if draw(st.booleans()):
                    traits["$unset"] = ["coupon"]
                elif draw(st.booleans()):
                    traits["coupon"] = f"C{t}"
                events.append(ev(m, "identify", uid=uid, aid=a, ts=t, traits=traits))
            elif kind == "identify-email":
                if email is None:
                    events.append(ev(m, "identify", uid=uid, aid=a, ts=t, traits={"name": f"n{t}"}))
                else:
                    events.append(ev(m, "identify", uid=uid, aid=a, ts=t, traits={"email": email.upper()}))
            else:  # alias: the anonymous id becomes the member
                events.append(ev(m, "alias", uid=uid, prev=a, ts=t))
    return events


def run(events: list[Event]) -> tuple[Engine, dict[frozenset[str], dict[str, Any]]]:
    engine = Engine()
    pids = engine.apply(events).person_ids
    return engine, outcome(engine, events, pids)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), events=histories())
def test_any_arrival_order_gives_the_same_people_traits_and_timelines(data: st.DataObject, events: list[Event]) -> None:
    _, in_time_order = run(events)
    shuffled = data.draw(st.permutations(events))
    _, in_any_order = run(shuffled)
    assert in_any_order == in_time_order


@settings(max_examples=200, deadline=None)
@given(data=st.data(), events=histories())
def test_applying_one_run_of_events_in_two_halves_gives_the_same_result(
    data: st.DataObject, events: list[Event]
) -> None:
    cut = data.draw(st.integers(0, len(events)))
    engine = Engine()
    pids = engine.apply(events[:cut]).person_ids + engine.apply(events[cut:]).person_ids
    assert outcome(engine, events, pids) == run(events)[1]


@settings(max_examples=200, deadline=None)
@given(events=histories())
def test_links_seen_again_change_nothing(events: list[Event]) -> None:
    engine, before = run(events)
    again = [
        ev("again-" + e.message_id, e.type, uid=e.user_id, aid=e.anonymous_id, ts=e.timestamp, traits=e.traits,
           prev=e.previous_id)
        for e in events if e.type in ("identify", "alias")
    ]  # fmt: skip
    engine.apply(again)
    partition = {frozenset(f"{t}:{v}" for t, vs in p.identifiers.items() for v in vs) for p in engine.persons.values()}
    assert partition == set(before)


@settings(max_examples=300, deadline=None)
@given(
    links=st.lists(
        st.tuples(st.sampled_from(["U1", "U2", "U3", None]), st.sampled_from(["a1", "a2", "a3", "a4"])),
        min_size=1,
        max_size=12,
    )
)
def test_two_user_ids_are_never_merged_whatever_the_links(links: list[tuple[str | None, str]]) -> None:
    engine = Engine()
    applied = engine.apply(
        ev(f"m{i}", "identify" if uid else "track", uid=uid, aid=aid, ts=i) for i, (uid, aid) in enumerate(links)
    )
    for person in engine.persons.values():
        assert len(person.identifiers.get("user_id", [])) <= 1
    users = {u for u, _ in links if u}
    holders = [p for p in engine.persons.values() if p.identifiers.get("user_id")]
    assert sorted(p.identifiers["user_id"][0] for p in holders) == sorted(users)
    # every refused link is on record, on the person and on the timeline
    anon_owner: dict[str, str] = {}
    for uid, aid in links:
        if uid and anon_owner.setdefault(aid, uid) != uid:
            assert any(isinstance(e, IdentityConflict) for e in applied.effects)
            break


def test_anonymous_browsing_then_login_is_one_person_with_both_parts() -> None:
    engine = Engine()
    events = [
        ev("1", "page", aid="A", ts=1),
        ev("2", "track", aid="A", ts=2),
        ev("3", "track", uid="M1", ts=3, channel="store"),  # bought in the store before
        ev("4", "identify", uid="M1", aid="A", ts=4, traits={"email": "m1@example.jp"}),
    ]
    applied = engine.apply(events)
    assert len(engine.persons) == 1
    (person,) = engine.persons.values()
    assert person.identifiers == {"user_id": ["M1"], "anonymous_id": ["A"], "email": ["m1@example.jp"]}
    assert person.event_count == 4 and person.channels == {"web": 3, "store": 1}
    assert {engine.canonical(p) for p in applied.person_ids} == {person.person_id}
    (merge,) = [e for e in applied.effects if isinstance(e, Merged)]
    assert merge.timestamp == 4 and merge.identifiers == {"user_id": ["M1"]}
    assert merge.person_id == person.person_id and merge.merged_person_id in person.merged_ids


def test_a_second_user_id_on_an_anonymous_id_is_a_recorded_conflict_not_a_merge() -> None:
    engine = Engine()
    engine.apply([ev("1", "identify", uid="U1", aid="A", ts=1)])
    applied = engine.apply([ev("2", "identify", uid="U2", aid="A", ts=2)])
    assert sorted(tuple(p.identifiers["user_id"]) for p in engine.persons.values()) == [("U1",), ("U2",)]
    u1 = engine.lookup("user_id", "U1")
    u2 = engine.lookup("user_id", "U2")
    assert u1 and u2 and u1 is not u2
    assert engine.lookup("anonymous_id", "A") is u1  # the anonymous id stays where it was
    assert u2.conflicts and u2.conflicts[0]["values"] == ["U1", "U2"]
    assert [type(e) for e in applied.effects] == [IdentityConflict]


def test_traits_newest_timestamp_wins_and_set_once_keeps_the_first() -> None:
    engine = Engine()
    engine.apply(
        [
            ev("2", "identify", uid="U", ts=200, traits={"rank": "gold", "$set_once": {"first": "b"}}),
            ev("1", "identify", uid="U", ts=100, traits={"rank": "silver", "$set_once": {"first": "a"}, "x": 1}),
            ev("3", "identify", uid="U", ts=300, traits={"$unset": ["x"]}),
        ]
    )
    person = engine.lookup("user_id", "U")
    assert person is not None
    assert person.traits == {"first": "a", "rank": "gold"}


def test_forget_removes_the_person_and_their_identifiers() -> None:
    engine = Engine()
    engine.apply([ev("1", "track", aid="A", ts=1), ev("2", "identify", uid="U", aid="A", ts=2)])
    pid = engine.lookup("user_id", "U").person_id  # type: ignore[union-attr]
    forgotten = engine.forget(pid)
    assert forgotten is not None and sorted(forgotten.identifiers) == ["anonymous_id:A", "user_id:U"]
    assert engine.persons == {} and engine.index == {} and engine.aliases == {}
    # the same anonymous id coming back later is a new person
    engine.apply([ev("3", "track", aid="A", ts=3)])
    assert engine.lookup("anonymous_id", "A").person_id != pid  # type: ignore[union-attr]


def test_forget_also_drops_other_peoples_conflict_records_that_name_the_person() -> None:
    engine = Engine()
    engine.apply([ev("1", "identify", uid="U1", aid="A", ts=1), ev("2", "identify", uid="U2", aid="A", ts=2)])
    u1 = engine.lookup("user_id", "U1")
    u2 = engine.lookup("user_id", "U2")
    assert u1 and u2 and u2.conflicts
    engine.forget(u1.person_id)
    assert u2.conflicts == []


def test_forget_with_the_holders_named_is_forget_looking_at_everyone() -> None:
    def build() -> Engine:
        engine = Engine()
        engine.apply([ev(f"c{i}", "identify", uid=f"C{i}", aid=f"a{i}", ts=i) for i in range(5)])
        engine.apply([ev("1", "identify", uid="U1", aid="A", ts=10), ev("2", "identify", uid="U2", aid="A", ts=11)])
        return engine

    everyone, named = build(), build()
    u2 = everyone.lookup("user_id", "U2")
    holders = [p.person_id for p in named.persons.values() if p.conflicts]
    assert u2 is not None and holders
    everyone.forget(u2.person_id)
    named.forget(u2.person_id, holders)
    assert msgspec.json.encode(sorted(everyone.persons.values(), key=lambda p: p.person_id)) == msgspec.json.encode(
        sorted(named.persons.values(), key=lambda p: p.person_id)
    )
    assert not any(p.conflicts for p in named.persons.values())
