"""The events laid out by person (`storage/event_runs.py`): the view answers as one table.

A store with tiny runs seals its hot table and merges runs in the background while
batches and forgets go on; every read (all events, one person's timeline) equals the same
read over a plain table of the same rows, through a reopen and from an old file's
single `events` table migrated at open.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from tsunagu.core.ports import EVENT_COLUMNS, AnalyticsBatch
from tsunagu.sql.timeline import timeline_query
from tsunagu.storage.duckdb_analytics import _SCHEMA, DuckDBAnalytics
from tsunagu.storage.event_runs import MAX_RUNS_MERGED, Run, pick_merge, tier

NOW = 1_790_000_000_000
PERSONS = [f"p{i:02d}" for i in range(12)]


def _batch(seq: int, rows: list[tuple[str, str, int]], forget: list[str] | None = None) -> AnalyticsBatch:
    batch = AnalyticsBatch(seq=seq)
    for mid, pid, ts in rows:
        row = {
            "seq": seq, "message_id": mid, "person_id": pid, "type": "track", "event": "view", "channel": "web",
            "store_id": None, "timestamp": ts, "received_at": ts, "user_id": None, "anonymous_id": None,
            "properties": b'{"category": "tops"}', "context": b"{}", "traits": {},
        }  # fmt: skip
        for column in EVENT_COLUMNS:
            batch.events[column].append(row[column])
    if forget:
        batch.forget = forget
    return batch


def _settled(store: DuckDBAnalytics) -> None:
    """Wait until no merge is due (the background thread has done them)."""
    deadline = time.monotonic() + 30
    while pick_merge(store.runs(), store.run_rows, store.fanout) or store._merging:
        assert time.monotonic() < deadline, store.runs()
        time.sleep(0.02)


def _all(store: DuckDBAnalytics) -> list[tuple[Any, ...]]:
    return store.query("SELECT message_id, person_id, epoch_ms(timestamp), category FROM events ORDER BY message_id")


def test_seals_and_merges_keep_every_row_and_forget_reaches_every_run(tmp_path: Path) -> None:
    store = DuckDBAnalytics(tmp_path / "a.duckdb", run_rows=20, fanout=2)
    store.start(lambda after, limit: [], lambda rec, batch: None, 3600)
    rng = random.Random(7)
    expected: dict[str, tuple[str, int]] = {}
    forgotten: set[str] = set()
    for seq in range(1, 60):
        n = rng.randrange(1, 9)
        rows = [(f"m{seq:03d}-{i}", rng.choice(PERSONS), NOW + rng.randrange(10**6)) for i in range(n)]
        forget = [rng.choice(PERSONS)] if seq % 17 == 0 else None
        store.write(_batch(seq, rows, forget))
        for mid, pid, ts in rows:
            expected[mid] = (pid, ts)
        if forget:
            forgotten |= set(forget)
            expected = {m: v for m, v in expected.items() if v[0] not in forget}
        time.sleep(0.002)  # let merges interleave with writes
    _settled(store)
    assert store.merges > 0 and store.runs()
    assert all(r.sorted for r in store.runs())
    want = sorted((m, p, ts, "tops") for m, (p, ts) in expected.items())
    assert _all(store) == want
    pid = PERSONS[3]
    # the timeline: newest first (timestamp, then message id), a page of 7 and one more
    mine = sorted(((m, ts) for m, (p, ts) in expected.items() if p == pid), key=lambda r: (r[1], r[0]), reverse=True)
    got = _query_timeline(store, [pid])
    assert [(m, datetime_ms(t)) for m, _, t in got] == mine[:8]
    store.close()

    again = DuckDBAnalytics(tmp_path / "a.duckdb", run_rows=20, fanout=2)
    assert _all(again) == want and again.runs() == store.runs()
    assert not again.query("SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'events_merge%'")
    again.close()


def datetime_ms(value: Any) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


def _query_timeline(store: DuckDBAnalytics, pids: list[str]) -> list[tuple[Any, ...]]:
    sql, params = timeline_query(pids, limit=7)
    rows = store.query_dicts(sql, params)
    return [(r["message_id"], r["person_id"], r["timestamp"]) for r in rows]


def test_a_forget_while_a_merge_runs_is_applied_to_the_merged_run(tmp_path: Path) -> None:
    store = DuckDBAnalytics(tmp_path / "a.duckdb", run_rows=10, fanout=2)
    for seq in range(1, 5):  # four sealed runs of 10 rows: two merges due, none started
        store.write(_batch(seq, [(f"m{seq}-{i}", PERSONS[i % 3], NOW + i) for i in range(10)]))
    assert len(store.runs()) == 4
    started, release = threading.Event(), threading.Event()
    merge = store._merge

    def held(todo: list[Run]) -> None:
        started.set()
        release.wait(10)
        merge(todo)

    store._merge = held  # type: ignore[method-assign]
    store.start(lambda after, limit: [], lambda rec, batch: None, 3600)
    assert started.wait(10)
    store.write(_batch(5, [], forget=[PERSONS[0]]))  # the merge read its runs before this
    release.set()
    _settled(store)
    assert store.merges >= 1
    assert store.query("SELECT count(*) FROM events WHERE person_id = ?", [PERSONS[0]]) == [(0,)]
    assert store.query("SELECT count(*) FROM events") == [(40 - 4 * 4,)]
    store.close()


def test_an_old_file_with_one_events_table_is_migrated_into_a_run(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(_SCHEMA)
    for i in range(30):
        con.execute(
            "INSERT INTO events VALUES (?, ?, ?, 'track', 'view', 'web', NULL, make_timestamptz(? * 1000),"
            " make_timestamptz(? * 1000), NULL, NULL, '{\"category\": \"outer\"}', '{}', NULL)",
            [i + 1, f"m{i:02d}", PERSONS[i % 5], NOW + i, NOW + i],
        )
    con.execute("INSERT INTO meta VALUES ('applied_seq', 30)")
    con.close()
    store = DuckDBAnalytics(path, run_rows=1000, fanout=4)
    assert [(r.rows, r.sorted) for r in store.runs()] == [(30, False)]
    assert store.query("SELECT count(*), count(category) FROM events") == [(30, 30)]
    store.start(lambda after, limit: [], lambda rec, batch: None, 3600)
    _settled(store)
    assert [(r.rows, r.sorted) for r in store.runs()] == [(30, True)]
    store.write(_batch(31, [("new", PERSONS[1], NOW + 99)]))
    assert [r[0] for r in _query_timeline(store, [PERSONS[1]])][:2] == ["new", "m26"]
    assert store.query("SELECT count(*) FROM person_events") == [(31,)]
    store.close()


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(0, 80), run_rows=st.integers(1, 30), fanout=st.integers(2, 4))
def test_the_merge_policy_keeps_few_runs_and_merges_only_whole_tiers(rows: int, run_rows: int, fanout: int) -> None:
    runs: list[Run] = []
    seq = 0
    for _ in range(rows):  # one run sealed at a time, each merge done before the next seal
        runs.append(Run(f"r{seq}", seq, run_rows, True))
        seq += run_rows
        while todo := pick_merge(runs, run_rows, fanout):
            assert len(todo) == fanout and len({tier(r.rows, run_rows, fanout) for r in todo}) == 1
            merged = Run(f"m{seq}", todo[0].first_seq, sum(r.rows for r in todo), True)
            runs = [r for r in runs if r not in todo] + [merged]
    # at most fanout - 1 runs a tier below the cap: a read probes O(fanout * log(rows)) tables
    per_tier: dict[int, int] = {}
    for r in runs:
        assert r.rows <= MAX_RUNS_MERGED * run_rows
        if fanout * r.rows <= MAX_RUNS_MERGED * run_rows:
            per_tier[tier(r.rows, run_rows, fanout)] = per_tier.get(tier(r.rows, run_rows, fanout), 0) + 1
    assert all(n < fanout for n in per_tier.values())
    # an unsorted run too big for one merge is left alone; a run a merge failed on too
    big = Run("old", 0, MAX_RUNS_MERGED * run_rows + 1, False)
    assert pick_merge([big], run_rows, fanout) == []
    assert pick_merge([Run("x", 0, run_rows, False)], run_rows, fanout, frozenset({"x"})) == []
    assert sum(r.rows for r in runs) == rows * run_rows
