"""Persons beyond memory: a bounded cache over the state store changes no result.

The same stream through a pipeline that keeps 2 persons in memory (checkpointing often,
so the rest live only in `state.sqlite`) and through one that keeps everyone gives the
same persons, identities, memberships and timelines; merges of a person in memory with
one on disk, forgetting a person on disk, and a crash with most persons on disk lose
nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tsunagu.app import EMBEDDED
from tsunagu.core.config import WorkspaceConfig
from tsunagu.core.events import Event
from tsunagu.core.store import Persons
from tsunagu.pipeline import WorkspacePipeline

NOW = 1_790_000_000_000
DAY = 86_400_000
SEGMENTS = {
    "viewers": {"rule": {"did": "view", "count": {"op": "gte", "value": 2}}},
    "recent_buyers": {"rule": {"did": "buy", "within_days": 3}},
    "big_spenders": {"rule": {"data": "buy.revenue", "stat": "sum", "window": "all_time", "op": "gte", "value": 300}},
}


def ev(mid: str, typ: str, name: str | None, uid: str | None, aid: str | None, ts: int, props: dict[str, Any]) -> Event:
    traits = {"rank": props.get("rank")} if typ == "identify" else {}
    return Event(
        mid, typ, name if typ == "track" else None, uid, aid, ts, ts, "web", None,
        msgspec.json.encode(props), traits, b"{}",
    )  # fmt: skip


async def _open(path: Path, cache: int, now: int = NOW) -> WorkspacePipeline:
    pipe = WorkspacePipeline(
        "t", path, WorkspaceConfig(retail_traits=False), EMBEDDED, flush_interval=3600, person_cache=cache
    )
    await pipe.open(now, background=False)
    return pipe


def _crash(pipe: WorkspacePipeline) -> None:
    pipe._close_stores()


async def _state(pipe: WorkspacePipeline) -> dict[str, Any]:
    """Everything a reader could see of every person."""
    out: dict[str, Any] = {}
    for p in sorted(pipe.engine.persons.values(), key=lambda p: p.person_id):
        rows, _ = await pipe.timeline(p, limit=1000)
        out[p.person_id] = {
            "person": p.to_dict(),
            "counters": p.counters,
            "data": p.data,
            "timeline": [(r["message_id"], r["type"]) for r in rows],
        }
    sizes = {k: n for k, n in pipe.engine.live.sizes.items() if n}
    assert sizes == pipe.engine.live.count_members(pipe.engine.persons)  # kept, not counted, yet equal
    members = {name: pipe.segment_members(name, "", 1_000_000) for name in SEGMENTS}
    assert members == _members_by_scan(pipe)  # the member index, read back, is the live memberships
    keys = sorted(pipe.engine.index.items())
    aliases = sorted(pipe.engine.aliases.items())
    # the timers in the store's index, and what memory has newer (a checkpoint came last)
    timers = dict(pipe._state.timers()) | dict(pipe.engine.live.next_check)
    return {"persons": out, "index": keys, "aliases": aliases, "timers": timers, "sizes": sizes, "members": members}


def _members_by_scan(pipe: WorkspacePipeline) -> dict[str, list[str]]:
    persons = sorted(pipe.engine.persons.values(), key=lambda p: p.person_id)
    return {name: [p.person_id for p in persons if name in p.segments] for name in SEGMENTS}


step = st.tuples(
    st.sampled_from(["view", "buy", "identify", "page"]),
    st.integers(0, 7),  # anonymous id
    st.one_of(st.none(), st.integers(0, 4)),  # user id
    st.integers(0, 5),  # day offset
    st.integers(0, 200),  # revenue
)


async def _run(path: Path, cache: int, steps: list[tuple[str, int, int | None, int, int]], crash_at: int | None) -> Any:
    pipe = await _open(path, cache)
    for name, body in SEGMENTS.items():
        await pipe.define("segment", name, body, NOW)
    for i, (kind, aid, uid, day, revenue) in enumerate(steps):
        ts = NOW + day * DAY
        typ = {"identify": "identify", "page": "page"}.get(kind, "track")
        props = {"revenue": revenue, "rank": f"r{revenue % 3}"} if kind == "buy" or kind == "identify" else {}
        e = ev(f"m{i}", typ, kind, f"U{uid}" if uid is not None else None, f"A{aid}", ts, props)
        await pipe.submit([e], ts)
        if i % 4 == 1:  # between checkpoints: the index as of the last one, and what changed since
            assert {n: pipe.segment_members(n, "", 1_000_000) for n in SEGMENTS} == _members_by_scan(pipe)
        if cache and i % 3 == 2:
            await pipe.checkpoint()  # the unchanged persons leave memory
        if crash_at == i:
            _crash(pipe)
            pipe = await _open(path, cache)
    await pipe.tick(NOW + 9 * DAY)
    await pipe.flush()
    if cache:
        await pipe.checkpoint()
        assert isinstance(pipe.engine.persons, Persons)
        assert pipe.engine.persons.in_memory() <= cache
        event(f"persons read back from the store: {'some' if pipe.engine.persons.loads else 'none'}")
    state = await _state(pipe)
    await pipe.close()
    return state


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=4, max_size=25), crash=st.one_of(st.none(), st.integers(0, 24)))
def test_a_small_cache_changes_no_result(tmp_path_factory: Any, steps: list[Any], crash: int | None) -> None:
    async def scenario() -> None:
        small = await _run(tmp_path_factory.mktemp("small"), 2, steps, crash)
        whole = await _run(tmp_path_factory.mktemp("whole"), 0, steps, None)
        assert small == whole

    asyncio.run(scenario())


def test_merge_of_a_person_in_memory_with_one_on_disk(tmp_path: Path) -> None:
    async def scenario() -> None:
        pipe = await _open(tmp_path, 1)
        await pipe.submit([ev("1", "track", "view", None, "A", NOW, {})], NOW)
        await pipe.checkpoint()
        await pipe.submit([ev("2", "track", "view", "M", None, NOW, {})], NOW)  # A leaves memory
        await pipe.checkpoint()
        persons = pipe.engine.persons
        assert isinstance(persons, Persons) and persons.in_memory() == 1
        loads = persons.loads
        await pipe.submit([ev("3", "identify", None, "M", "A", NOW + 1, {"rank": "gold"})], NOW)
        assert persons.loads > loads  # the cold one was read back for the merge
        person = pipe.engine.lookup("user_id", "M")
        assert person is not None and person.event_count == 3
        assert pipe.engine.lookup("anonymous_id", "A") is person
        assert len(pipe.engine.persons) == 1
        await pipe.checkpoint()
        _crash(pipe)

        pipe = await _open(tmp_path, 1)
        again = pipe.engine.lookup("anonymous_id", "A")
        assert again is not None and again.event_count == 3 and again.traits == {"rank": "gold"}
        assert len(pipe.engine.persons) == 1
        loser = next(iter(again.merged_ids))
        assert pipe.engine.get(loser) is again  # the alias is in the store too
        await pipe.close()

    asyncio.run(scenario())


def test_a_new_person_merged_away_while_a_checkpoint_writes_it_stays_gone(tmp_path: Path) -> None:
    """A checkpoint (the one `_relieve_memory` starts) writes a new person; before it
    commits, a merge removes that person. The store holds it for one checkpoint; the
    cache must not read it back as alive, nor count it."""

    async def scenario() -> None:
        pipe = await _open(tmp_path, 2)  # no checkpoint of its own to relieve memory
        await pipe.submit([ev("1", "track", "view", "M", None, NOW, {})], NOW)
        await pipe.checkpoint()
        await pipe.submit([ev("2", "track", "view", None, "A", NOW, {})], NOW)
        loser = pipe.engine.index.get("anonymous_id:A")
        assert loser is not None
        state = pipe._state
        assert state is not None
        entered, release = threading.Event(), threading.Event()
        save = state.save

        def held(*args: Any) -> Any:
            entered.set()
            release.wait(10)
            return save(*args)

        state.save = held  # type: ignore[method-assign]
        writing = asyncio.create_task(pipe.checkpoint())
        await asyncio.to_thread(entered.wait, 10)
        await pipe.submit([ev("3", "track", "view", "M", "A", NOW + 1, {})], NOW)  # the new one merges away
        release.set()
        await writing
        state.save = save  # type: ignore[method-assign]
        persons = pipe.engine.persons
        assert state.person(loser) is not None  # written by the checkpoint that was in flight
        assert pipe.engine.get(loser) is not None  # an alias now: the winner
        assert loser not in persons and persons.get(loser) is None
        assert len(persons) == 1 and [p.event_count for p in persons.values()] == [3]
        await pipe.checkpoint()
        assert state.person(loser) is None and len(persons) == 1
        await pipe.close()

        pipe = await _open(tmp_path, 1)
        assert len(pipe.engine.persons) == 1 and [p.event_count for p in pipe.engine.persons.values()] == [3]
        await pipe.close()

    asyncio.run(scenario())


def test_forget_a_person_on_disk(tmp_path: Path) -> None:
    async def scenario() -> None:
        pipe = await _open(tmp_path, 1)
        await pipe.submit([ev("1", "track", "view", "M", None, NOW, {})], NOW)
        await pipe.checkpoint()
        await pipe.submit([ev("2", "track", "view", "K", None, NOW, {})], NOW)
        await pipe.checkpoint()
        cold = pipe.engine.index.get("user_id:M")
        assert cold is not None
        result = await pipe.forget(cold, NOW)
        assert result["events"] == 1
        assert pipe.engine.lookup("user_id", "M") is None
        assert len(pipe.engine.persons) == 1
        _crash(pipe)  # before the next checkpoint: the log's forget record replays

        pipe = await _open(tmp_path, 1)
        assert pipe.engine.lookup("user_id", "M") is None
        assert pipe.engine.get(cold) is None
        assert pipe.engine.lookup("user_id", "K") is not None
        await pipe.checkpoint()
        assert pipe._state is not None and pipe._state.person(cold) is None
        await pipe.close()

    asyncio.run(scenario())


def test_a_crash_with_most_persons_on_disk_loses_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        pipe = await _open(tmp_path, 5)
        for i in range(200):
            await pipe.submit([ev(f"a{i}", "track", "view", f"U{i}", None, NOW, {})], NOW)
        await pipe.checkpoint()
        for i in range(0, 200, 2):  # half change again after the checkpoint: in the log only
            await pipe.submit([ev(f"b{i}", "track", "view", f"U{i}", None, NOW + 1, {})], NOW)
        persons = pipe.engine.persons
        assert isinstance(persons, Persons) and persons.in_memory() < 200
        _crash(pipe)

        pipe = await _open(tmp_path, 5)
        assert pipe.stats["replayed"] <= 100  # only the tail (memory pressure checkpointed some)
        for i in range(200):
            p = pipe.engine.lookup("user_id", f"U{i}")
            assert p is not None and p.event_count == (2 if i % 2 == 0 else 1), i
            assert (p.segments == []) and p.person_id in pipe.engine.persons
        assert len(pipe.engine.persons) == 200
        assert (await pipe.submit([ev("b0", "track", "view", "U0", None, NOW + 1, {})], NOW)).duplicates == 1
        await pipe.close()

    asyncio.run(scenario())


def test_timers_wait_in_the_store_and_come_due_from_it_after_a_restart(tmp_path: Path) -> None:
    """Memory holds only the timers changed since the last checkpoint: the rest are read
    from the store's timer index when they come due, also after a restart."""

    async def scenario() -> None:
        # a cache of 10: the ten buyers stay in memory until the checkpoint this test takes
        # (more would make the store relieve memory by a checkpoint of its own)
        pipe = await _open(tmp_path, 10)
        await pipe.define("segment", "recent_buyers", SEGMENTS["recent_buyers"], NOW)
        await pipe.submit([ev(f"b{i}", "track", "buy", f"U{i}", None, NOW, {"revenue": 1}) for i in range(10)], NOW)
        assert len(pipe.engine.live.next_check) == 10  # changed since the checkpoint: in memory
        await pipe.checkpoint()
        assert pipe.engine.live.next_check == {} and pipe.engine.live.due == {}
        assert len(pipe._state.timers_due(10**9)) == 10
        _crash(pipe)

        pipe = await _open(tmp_path, 3, NOW + DAY)
        assert pipe.engine.live.next_check == {}  # not loaded at open
        assert pipe.segment_size("recent_buyers") == 10
        assert await pipe.tick(NOW + 4 * DAY) == 10  # every member leaves, read from disk when due
        assert pipe.segment_size("recent_buyers") == 0
        assert pipe.segment_members("recent_buyers") == []
        await pipe.checkpoint()
        assert pipe._state.timers_due(10**9) == []
        await pipe.close()

    asyncio.run(scenario())


def test_the_key_filter_spares_new_people_a_read_and_never_hides_a_stored_one(tmp_path: Path) -> None:
    """New people ask SQLite only on a false positive; after a merge and a forget removed
    keys and persons, and a crash, every stored key and person is still found."""

    async def scenario() -> None:
        pipe = await _open(tmp_path, 3)
        for i in range(300):
            await pipe.submit([ev(f"i{i}", "identify", None, f"U{i}", f"A{i}", NOW, {"rank": "gold"})], NOW)
        await pipe.checkpoint()
        state = pipe._state
        assert state is not None
        assert state.reads["key.absent"] >= 550 and state.reads["key.missed"] <= 50  # 600 new keys, 1 % FP
        assert state.reads["person.absent"] >= 270 and state.reads["person.missed"] <= 30
        await pipe.submit([ev("b", "track", "view", None, "B", NOW + 1, {})], NOW)
        await pipe.checkpoint()
        await pipe.submit([ev("m", "identify", None, "U1", "B", NOW + 2, {})], NOW)  # B's person merges away
        forgotten = pipe.engine.index.get("user_id:U3")
        assert forgotten is not None
        await pipe.forget(forgotten, NOW)
        await pipe.checkpoint()
        await pipe.submit([ev("late", "track", "view", "U4", None, NOW + 3, {})], NOW)  # in the log only
        _crash(pipe)

        pipe = await _open(tmp_path, 3)
        state = pipe._state
        assert state is not None and not state.filter_built  # the files were opened, not rebuilt
        con = sqlite3.connect(tmp_path / "state.sqlite")
        keys = con.execute("SELECT key, person_id FROM ident").fetchall()
        pids = [p for (p,) in con.execute("SELECT person_id FROM persons")]
        con.close()
        assert len(pids) == 299 and len(keys) == 599  # 300 + B, less the merged and the forgotten
        for key, pid in keys:
            assert state.key(key) == pid
        assert all(state.person(pid) is not None for pid in pids)
        assert pipe.engine.lookup("user_id", "U3") is None
        assert pipe.engine.lookup("anonymous_id", "B") is pipe.engine.lookup("user_id", "U1")
        merged = pipe.engine.lookup("user_id", "U1")
        assert merged is not None and merged.merged_ids and state.person(next(iter(merged.merged_ids))) is None
        u4 = pipe.engine.lookup("user_id", "U4")
        assert u4 is not None and u4.event_count == 2
        await pipe.close()

    asyncio.run(scenario())
