"""The vocabulary read from the analytics store: exact names and counts, sampled properties,
and an increment that adds up to what a full read gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tsunagu.core.engine import Engine
from tsunagu.core.events import Event
from tsunagu.sql import vocabulary as reads

from .history import NOW, analytics_store, histories


def _store(events: list[Event]):  # type: ignore[no-untyped-def]
    engine = Engine()
    pids = engine.apply(events).person_ids
    return analytics_store(engine, events, pids)


def _counts(v: reads.Vocabulary) -> dict[str, tuple[int, dict[str, int], dict[str, int]]]:
    return {n: (e.count, e.channels, e.stores) for n, e in v.events.items()}


def test_names_and_counts_are_exact_and_page_views_are_named_as_rules_name_them() -> None:
    events = [
        Event("m1", "page", "Home", "U1", None, NOW, NOW, "web", None, b'{"path": "/"}', {}, b"{}"),
        Event("m2", "page", "Sale", "U2", None, NOW, NOW, "web", None, b'{"path": "/sale"}', {}, b"{}"),
        Event("m3", "screen", "Top", "U1", None, NOW, NOW, "app", None, b"{}", {}, b"{}"),
        Event("m4", "track", "buy", "U1", None, NOW, NOW, "store", "S1", b'{"revenue": 5, "items": [{"sku": "A"}]}',
              {}, b"{}"),
        Event("m5", "identify", None, "U2", None, NOW, NOW, "web", None, b"{}", {"member_rank": "gold"}, b"{}"),
    ]  # fmt: skip
    v = reads.read(_store(events), upto=len(events))
    assert _counts(v) == {
        "$page": (2, {"web": 2}, {}),
        "$screen": (1, {"app": 1}, {}),
        "buy": (1, {"store": 1}, {"S1": 1}),
    }
    assert v.events["$page"].keys == {"path": 2} and v.events["$page"].values["path"] == {"/": 1, "/sale": 1}
    assert v.events["buy"].fields == {"buy.revenue"} and v.events["buy"].paths == {"revenue", "items.sku"}
    assert v.traits == {"member_rank": 1} and v.people == 2 and v.trait_values == {"member_rank": {"gold": 1}}
    assert v.seq == len(events)


@settings(max_examples=60, deadline=None)
@given(events=histories(max_events=40), split=st.integers(0, 40))
def test_a_read_and_its_increments_count_what_one_full_read_does(events: list[Event], split: int) -> None:
    con = _store(events)
    split = min(split, len(events))
    whole = reads.read(con, upto=len(events))
    part = reads.read(con, upto=split)
    reads.merge(part, reads.increment(con, split, len(events)))
    assert _counts(part) == _counts(whole)
    assert part.seq == whole.seq == len(events)
    for name, seen in whole.events.items():  # every property of a small history is seen both ways
        assert part.events[name].keys.keys() == seen.keys.keys(), name
