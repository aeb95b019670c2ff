"""The `StateStore` and `PersonStore` ports on every backend: checkpoints and point reads.

A checkpoint is one transaction over persons, the identity index, aliases, timers, the
engine's meta and the log seq they cover; a failed one writes nothing; a read from
another thread while a checkpoint is written sees the previous one or this one, never
half (docs/storage.md, docs/decisions/0003-person-store.md). Rows are opaque bytes here:
the engine's encoding is not the store's business.
"""

from __future__ import annotations

import threading
from typing import Any

import msgspec
import pytest

from tsunagu.core.ports import PersonStore, StateStore

from .conftest import Opened, PersonStateStore, unlike_port

_meta = msgspec.msgpack.encode


def _row(pid: str, version: int = 1) -> bytes:
    return f"{version}:{pid}".encode()


def _everything(store: PersonStateStore) -> dict[str, object]:
    """What every read of both ports gives, to compare a store with itself after a reopen."""
    seq, bodies = store.load()
    return {
        "seq": seq,
        "bodies": sorted(bodies),
        "meta": store.load_meta(),
        "persons": store.persons_after("", 1_000_000),
        "count": store.count(),
        "keys": sorted(store.keys()),
        "aliases": sorted(store.aliases()),
        "timers": sorted(store.timers()),
    }


_EMPTY = {"seq": 0, "bodies": [], "meta": {}, "persons": [], "count": 0, "keys": [], "aliases": [], "timers": []}


def test_the_backend_has_every_method_of_the_state_store_and_person_store_ports(
    person_store: Opened[PersonStateStore],
) -> None:
    assert unlike_port(person_store.store, StateStore) == []
    assert unlike_port(person_store.store, PersonStore) == []


def test_a_new_store_holds_nothing_at_seq_zero(person_store: Opened[PersonStateStore]) -> None:
    store = person_store.store
    seq, bodies = store.load()
    assert (seq, list(bodies)) == (0, [])
    assert store.load_meta() == {}
    assert store.read_persons(["p1"]) == (0, {}, [])
    assert store.person("p1") is None and store.key("user_id:U1") is None and store.alias("p1") is None
    assert store.persons_after("", 10) == [] and store.count() == 0
    assert list(store.keys()) == [] and list(store.aliases()) == [] and list(store.timers()) == []


def test_a_saved_checkpoint_answers_every_point_read(person_store: Opened[PersonStateStore]) -> None:
    store = person_store.store
    store.save(
        7,
        [("p1", _row("p1")), ("p2", _row("p2"))],
        [],
        _meta({"version": 4, "live": {"sizes": {"vip": 1}}}),
        keys={"user_id:U1": "p1", "anonymous_id:A1": "p1", "user_id:U2": "p2"},
        aliases={"p0": "p1"},
        timers={"p2": 20_000},
    )
    assert store.person("p1") == _row("p1") and store.person("p2") == _row("p2") and store.person("p3") is None
    assert store.key("user_id:U1") == "p1" and store.key("anonymous_id:A1") == "p1" and store.key("x") is None
    assert store.alias("p0") == "p1" and store.alias("p1") is None
    assert store.count() == 2
    seq, bodies = store.load()
    assert seq == 7 and sorted(bodies) == [_row("p1"), _row("p2")]
    assert store.load_meta() == {"version": 4, "live": {"sizes": {"vip": 1}}}
    assert sorted(store.keys()) == [("anonymous_id:A1", "p1"), ("user_id:U1", "p1"), ("user_id:U2", "p2")]
    assert list(store.aliases()) == [("p0", "p1")]
    assert list(store.timers()) == [("p2", 20_000)]


def test_a_later_checkpoint_changes_only_what_it_names_and_none_deletes(
    person_store: Opened[PersonStateStore],
) -> None:
    store = person_store.store
    store.save(
        1,
        [("p1", _row("p1")), ("p2", _row("p2")), ("p3", _row("p3"))],
        [],
        _meta({"v": 1}),
        keys={"k1": "p1", "k2": "p2", "k3": "p3"},
        aliases={"a1": "p1", "a2": "p2"},
        timers={"p1": 10, "p2": 20},
    )
    store.save(
        2,
        [("p2", _row("p2", 2))],
        ["p3"],
        b"",  # no meta: the previous one stays
        keys={"k2": "p1", "k3": None, "k4": "p2"},
        aliases={"a2": None, "a3": "p1"},
        timers={"p1": None, "p2": 21},
    )
    assert store.load()[0] == 2
    assert store.load_meta() == {"v": 1}
    assert store.persons_after("", 10) == [("p1", _row("p1")), ("p2", _row("p2", 2))]
    assert store.person("p3") is None and store.count() == 2  # removed persons disappear
    assert sorted(store.keys()) == [("k1", "p1"), ("k2", "p1"), ("k4", "p2")]
    assert sorted(store.aliases()) == [("a1", "p1"), ("a3", "p1")]
    assert list(store.timers()) == [("p2", 21)]
    store.save(3, [], [], _meta({"v": 3}))
    assert store.load_meta() == {"v": 3} and store.load()[0] == 3


def test_persons_after_pages_through_everyone_in_person_id_order(person_store: Opened[PersonStateStore]) -> None:
    store = person_store.store
    ids = [f"p{(i * 7919) % 1000:04d}" for i in range(1000)]  # saved out of order
    store.save(1, [(pid, _row(pid)) for pid in ids], [])
    pages = []
    after = ""
    while page := store.persons_after(after, 64):
        assert len(page) <= 64
        pages.append(page)
        after = page[-1][0]
    assert [row for page in pages for row in page] == [(pid, _row(pid)) for pid in sorted(ids)]
    assert len(pages) == 16  # 15 full pages and one of 40
    assert store.persons_after("p0499", 2) == [("p0500", _row("p0500")), ("p0501", _row("p0501"))]
    assert store.persons_after(sorted(ids)[-1], 10) == []
    assert store.count() == 1000


def test_keys_aliases_and_timers_iterate_every_entry_however_many(person_store: Opened[PersonStateStore]) -> None:
    store = person_store.store
    n = 12_000  # more than any one page a backend reads at a time
    store.save(
        1,
        [],
        [],
        keys={f"user_id:U{i}": f"p{i}" for i in range(n)},
        aliases={f"old{i}": f"p{i}" for i in range(n)},
        timers={f"p{i}": 20_000 + i % 7 for i in range(n)},
    )
    assert sorted(store.keys()) == sorted((f"user_id:U{i}", f"p{i}") for i in range(n))
    assert sorted(store.aliases()) == sorted((f"old{i}", f"p{i}") for i in range(n))
    assert sorted(store.timers()) == sorted((f"p{i}", 20_000 + i % 7) for i in range(n))


def test_read_persons_gives_the_rows_asked_for_with_their_checkpoints_seq_and_meta(
    person_store: Opened[PersonStateStore],
) -> None:
    store = person_store.store
    ids = [f"p{i}" for i in range(1500)]
    store.save(9, [(pid, _row(pid)) for pid in ids], [], _meta({"version": 4}))
    seq, meta, bodies = store.read_persons([*ids[:1200], "nobody"])  # more than one statement's worth
    assert (seq, meta) == (9, {"version": 4})
    assert sorted(bodies) == sorted(_row(pid) for pid in ids[:1200])  # the unknown one is left out
    assert store.read_persons([]) == (9, {"version": 4}, [])


def test_a_checkpoint_that_fails_part_way_writes_nothing(person_store: Opened[PersonStateStore]) -> None:
    store = person_store.store
    store.save(1, [("p1", _row("p1"))], [], _meta({"v": 1}), keys={"k1": "p1"})
    before = _everything(store)
    unstorable: Any = object()  # no backend can store it: the save fails after its first row
    with pytest.raises(Exception):  # noqa: B017 (each backend's driver raises its own error)
        store.save(2, [("p2", _row("p2")), ("p3", unstorable)], ["p1"], _meta({"v": 2}), keys={"k2": "p2"})
    assert _everything(store) == before
    store.save(2, [("p2", _row("p2"))], [])  # and the next checkpoint is taken
    assert store.person("p2") == _row("p2") and store.load()[0] == 2


def test_clear_forgets_every_person_entry_meta_and_the_seq(person_store: Opened[PersonStateStore]) -> None:
    store = person_store.store
    store.save(5, [("p1", _row("p1"))], [], _meta({"v": 1}), keys={"k": "p1"}, aliases={"a": "p1"}, timers={"p1": 3})
    store.clear()
    assert _everything(store) == _EMPTY
    assert store.person("p1") is None and store.key("k") is None and store.alias("a") is None


def test_a_reopened_store_holds_the_last_checkpoint(person_store: Opened[PersonStateStore]) -> None:
    store = person_store.store
    store.save(
        3,
        [("p1", _row("p1")), ("p2", _row("p2"))],
        [],
        _meta({"version": 4}),
        keys={"user_id:U1": "p1"},
        aliases={"p0": "p1"},
        timers={"p2": 20_000},
    )
    store.save(4, [("p2", _row("p2", 2))], ["p1"], keys={"user_id:U1": None, "user_id:U2": "p2"})
    before = _everything(store)
    assert before["seq"] == 4 and before["count"] == 1
    store = person_store.reopen()
    assert _everything(store) == before
    assert store.person("p2") == _row("p2", 2) and store.key("user_id:U2") == "p2" and store.alias("p0") == "p1"
    assert store.read_persons(["p1", "p2"]) == (4, {"version": 4}, [_row("p2", 2)])


def test_reads_while_a_checkpoint_is_written_from_a_thread_never_see_half_of_it(
    person_store: Opened[PersonStateStore],
) -> None:
    store = person_store.store
    ids = [f"p{i:05d}" for i in range(3000)]
    store.save(1, [(pid, _row(pid, 1)) for pid in ids], [], _meta({"version": 1}))
    failures: list[BaseException] = []

    def checkpoints() -> None:  # every checkpoint rewrites every person with its own seq
        try:
            for seq in range(2, 10):
                store.save(seq, [(pid, _row(pid, seq)) for pid in ids], [], _meta({"version": seq}))
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=checkpoints)
    writer.start()
    reads = 0
    while writer.is_alive() or reads == 0:
        seq, meta, bodies = store.read_persons(ids)
        assert meta == {"version": seq} and len(bodies) == len(ids)
        assert {body.split(b":")[0] for body in bodies} == {str(seq).encode()}, "read_persons mixed checkpoints"
        page = store.persons_after("", len(ids))
        assert len({body.split(b":")[0] for _, body in page}) == 1, "persons_after mixed checkpoints"
        assert store.person(ids[-1]) is not None and store.count() == len(ids)
        reads += 1
    writer.join()
    assert failures == []
    assert store.read_persons(ids[:1])[0] == 9


def test_the_member_index_answers_a_segments_members_in_id_order_in_pages(
    person_store: Opened[PersonStateStore],
) -> None:
    store = person_store.store
    assert store.members("vip", "", 10) == []
    rows = [(f"p{i}", _row(f"p{i}")) for i in range(1, 6)]
    members = {"p1": ["vip", "gold"], "p2": ["vip"], "p3": [], "p4": ["vip"], "p5": None}
    store.save(3, rows, [], members=members)
    assert store.members("vip", "", 10) == ["p1", "p2", "p4"]
    assert store.members("vip", "p1", 1) == ["p2"] and store.members("vip", "p4", 10) == []
    assert store.members("gold", "", 10) == ["p1"] and store.members("nobody", "", 10) == []


def test_a_checkpoint_rewrites_the_members_it_names_and_drops_removed_persons_and_segments(
    person_store: Opened[PersonStateStore],
) -> None:
    store = person_store.store
    store.save(1, [("p1", _row("p1")), ("p2", _row("p2"))], [], members={"p1": ["vip", "gold"], "p2": ["vip"]})
    store.save(2, [("p1", _row("p1", 2))], [], members={"p1": ["gold"]})  # p1 left vip; p2 untouched
    assert store.members("vip", "", 10) == ["p2"] and store.members("gold", "", 10) == ["p1"]
    store.save(3, [], ["p2"])  # a removed person leaves every segment
    assert store.members("vip", "", 10) == []
    # a deleted segment's rows go first; members named in the same checkpoint come back
    store.save(4, [("p3", _row("p3"))], [], members={"p3": ["gold"]}, dropped_segments=["gold"])
    assert store.members("gold", "", 10) == ["p3"]
    store.save(5, [], [], dropped_segments=["gold"])
    assert store.members("gold", "", 10) == []


def test_a_failed_checkpoint_leaves_the_member_index_as_it_was(person_store: Opened[PersonStateStore]) -> None:
    store = person_store.store
    store.save(1, [("p1", _row("p1"))], [], members={"p1": ["vip"]})
    with pytest.raises(Exception):  # noqa: B017  (a row that is not bytes: each backend raises its own)
        store.save(2, [("p2", object())], [], members={"p1": [], "p2": ["vip"]})  # type: ignore[list-item]
    assert store.members("vip", "", 10) == ["p1"]


def test_a_reopened_store_holds_its_member_index(person_store: Opened[PersonStateStore]) -> None:
    person_store.store.save(1, [("p1", _row("p1"))], [], members={"p1": ["vip"]})
    assert person_store.reopen().members("vip", "", 10) == ["p1"]


def test_the_timer_index_answers_the_timers_due_by_a_day_in_person_order(
    person_store: Opened[PersonStateStore],
) -> None:
    store = person_store.store
    store.save(1, [], [], timers={"p3": 20_001, "p1": 20_003, "p2": 20_000})
    assert store.timers_due(19_999) == []
    assert store.timers_due(20_001) == [("p2", 20_000), ("p3", 20_001)]
    store.save(2, [], [], timers={"p2": None, "p1": 20_000})
    assert store.timers_due(20_001) == [("p1", 20_000), ("p3", 20_001)]
