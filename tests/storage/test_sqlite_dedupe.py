"""The bounded de-dup index answers exactly like a plain set with a window.

Everything is real: a SqliteLog whose writer thread writes the index in its group
commit, the filter files on disk, restarts that reopen both (with or without a
checkpoint first, as after a clean stop or a kill -9).
"""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsunagu.core.dedupe import MemoryDeduper
from tsunagu.storage.sqlite_dedupe import SqliteDeduper
from tsunagu.storage.sqlite_log import SqliteLog

WINDOW = 600_000  # ten minutes: four buckets of three minutes
NOW = 1_790_000_000_000
_encode = msgspec.msgpack.encode


class _Store:
    """A log and its de-dup index, opened and closed like the pipeline does."""

    def __init__(self, directory: Path, *, memory_ids: int = 3, error_rate: float = 0.01) -> None:
        self.directory = directory
        self.kwargs = {"memory_ids": memory_ids, "error_rate": error_rate}
        self.seq = 0
        self.open(NOW)

    def open(self, now: int) -> None:
        self.dedupe = SqliteDeduper(self.directory / "dedupe", self.directory / "log.sqlite", WINDOW, **self.kwargs)
        self.log = SqliteLog(self.directory / "log.sqlite", index=self.dedupe)
        self.seq = self.log.last_seq()
        self.dedupe.open(now)

    def commit(self, ids: list[str], received_at: int) -> None:
        self.seq += 1
        done = threading.Event()
        results: list[object] = []

        def finished(result: object) -> None:
            results.append(result)
            done.set()

        self.log.append(self.seq, "events", received_at, b"", _encode(ids), b"", finished)
        done.wait(10)
        assert not isinstance(results[0], BaseException), results

    def restart(self, now: int, *, clean: bool) -> None:
        if clean:
            self.dedupe.checkpoint()
        self.log.close()
        self.dedupe.close()
        self.open(now)

    def close(self) -> None:
        self.log.close()
        self.dedupe.close()


class _Model:
    """The plain answer: committed ids with their time, and ids added but not yet logged."""

    def __init__(self) -> None:
        self.now = NOW
        self.committed: dict[str, int] = {}
        self.pending: dict[str, int] = {}

    def seen(self, mid: str) -> bool:
        at = self.committed.get(mid)
        return mid in self.pending or (at is not None and at >= self.now - WINDOW)


_ids = st.sampled_from([f"m{i}" for i in range(12)]) | st.text("abc", min_size=1, max_size=4)
_request = st.tuples(
    st.just("request"),
    st.lists(_ids, min_size=1, max_size=6),
    st.sets(st.integers(0, 5), max_size=2),  # positions the engine refuses
    st.booleans(),  # logged at once, or held (a concurrent retry comes before the commit)
    st.integers(0, 200_000),  # time since the previous step
)
_step = st.one_of(
    _request,
    _request,
    _request,
    st.tuples(st.just("commit_held")),
    st.tuples(st.just("advance"), st.integers(0, 400_000)),
    st.tuples(st.just("seen"), _ids),
    st.tuples(st.just("restart"), st.booleans()),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(_step, max_size=40), error_rate=st.sampled_from([0.01, 0.6]))
def test_the_bounded_deduper_answers_like_a_plain_set_with_a_window(tmp_path_factory, steps, error_rate) -> None:
    # error rate 0.6: most new ids hit a filter and are confirmed on disk
    store = _Store(tmp_path_factory.mktemp("dedupe"), error_rate=error_rate)
    model = _Model()
    reference = MemoryDeduper(WINDOW)
    held: list[tuple[list[str], int]] = []
    try:
        for step in steps:
            if step[0] == "request":
                _, ids, refused, log_now, dt = step
                model.now += dt
                store.dedupe.advance(model.now)
                reference.advance(model.now)
                fresh: list[str] = []
                for mid in ids:  # as WorkspacePipeline.submit does
                    expected = model.seen(mid)
                    assert store.dedupe.seen(mid) == expected, (mid, step)
                    assert reference.seen(mid) == expected, (mid, step)
                    if mid not in fresh and not expected:
                        fresh.append(mid)
                store.dedupe.add(fresh, model.now)
                reference.add(fresh, model.now)
                model.pending.update(dict.fromkeys(fresh, model.now))
                gone = [mid for i, mid in enumerate(fresh) if i in refused]
                store.dedupe.discard(gone)
                reference.discard(gone)
                for mid in gone:
                    del model.pending[mid]
                kept = [mid for mid in fresh if mid not in gone]
                if kept:
                    held.append((kept, model.now))
                if log_now:
                    step = ("commit_held",)
            if step[0] == "commit_held":
                for kept, at in held:
                    store.commit(kept, at)
                    for mid in kept:
                        model.committed[mid] = model.pending.pop(mid)
                held = []
            elif step[0] == "advance":
                model.now += step[1]
                store.dedupe.advance(model.now)
                reference.advance(model.now)
            elif step[0] == "seen":
                assert store.dedupe.seen(step[1]) == model.seen(step[1]), step
            elif step[0] == "restart":
                # what was not logged was never acknowledged: it is gone with the process
                held = []
                model.pending.clear()
                store.restart(model.now, clean=step[1])
                reference = MemoryDeduper(WINDOW)
                for mid, at in sorted(model.committed.items(), key=lambda kv: kv[1]):
                    reference.add([mid], at)
                reference.advance(model.now)
            store.dedupe.advance(model.now)  # takes in what the log committed
            assert len(store.dedupe) <= 3 + len(model.pending)  # bounded: the rest is on disk
        for mid in {*model.committed, "m0", "never"}:
            assert store.dedupe.seen(mid) == model.seen(mid), mid
    finally:
        store.close()


def _buckets(store: _Store) -> list[str]:
    return sorted(r[0] for r in store.log._read.execute("SELECT name FROM sqlite_master WHERE name LIKE 'dedupe%'"))


def test_a_restart_after_a_checkpoint_reads_only_the_log_tail(tmp_path: Path) -> None:
    store = _Store(tmp_path)
    for i in range(5):
        store.dedupe.add([f"a{i}", f"b{i}"], NOW)
        store.commit([f"a{i}", f"b{i}"], NOW)
    store.dedupe.advance(NOW)
    store.dedupe.checkpoint()
    store.dedupe.add(["late"], NOW + 1)
    store.commit(["late"], NOW + 1)
    store.restart(NOW + 2, clean=False)  # a kill -9: no checkpoint since "late"
    assert (store.dedupe.tail_records, store.dedupe.rebuilt) == (1, 0)
    assert len(store.dedupe) == 0  # nothing held in memory: the answers come from disk
    assert all(store.dedupe.seen(m) for m in ["a0", "b4", "late"])
    assert not store.dedupe.seen("new")
    store.close()


def test_a_restart_before_any_checkpoint_rebuilds_the_filter_from_the_index(tmp_path: Path) -> None:
    store = _Store(tmp_path)
    store.dedupe.add(["x", "y"], NOW)
    store.commit(["x", "y"], NOW)
    store.restart(NOW, clean=False)
    assert store.dedupe.rebuilt == 1 and store.dedupe.tail_records == 0
    assert store.dedupe.seen("x") and store.dedupe.seen("y") and not store.dedupe.seen("z")
    # an unreadable filter file (a torn write after a power cut) is rebuilt the same way
    store.dedupe.checkpoint()
    for path in (tmp_path / "dedupe").glob("*.bloom"):
        path.write_bytes(b"torn")
    store.restart(NOW, clean=False)
    assert store.dedupe.rebuilt == 1
    assert store.dedupe.seen("x") and not store.dedupe.seen("z")
    store.close()


def test_ids_older_than_the_window_leave_memory_filters_and_disk(tmp_path: Path) -> None:
    store = _Store(tmp_path)
    store.dedupe.add(["old"], NOW)
    store.commit(["old"], NOW)
    store.dedupe.advance(NOW)
    assert _buckets(store) and list((tmp_path / "dedupe").glob("*.bloom"))
    later = NOW + WINDOW + store.dedupe.width  # past the end of the old bucket
    store.dedupe.add(["new"], later)
    store.commit(["new"], later)  # the writer drops the expired table in this group
    store.dedupe.advance(later)
    assert not store.dedupe.seen("old") and store.dedupe.seen("new")
    assert _buckets(store) == [f"dedupe_{store.dedupe.width}_{later // store.dedupe.width}"]
    assert [p.name.split(".")[0] for p in (tmp_path / "dedupe").glob("*.bloom")] == [
        f"{store.dedupe.width}_{later // store.dedupe.width}"
    ]
    store.restart(later, clean=True)
    assert not store.dedupe.seen("old") and store.dedupe.seen("new")
    store.close()


def test_a_changed_window_keeps_the_ids_already_indexed(tmp_path: Path) -> None:
    store = _Store(tmp_path)
    store.dedupe.add(["kept"], NOW)
    store.commit(["kept"], NOW)
    store.dedupe.advance(NOW)
    store.dedupe.checkpoint()
    store.close()
    wider = SqliteDeduper(tmp_path / "dedupe", tmp_path / "log.sqlite", 2 * WINDOW, memory_ids=3)
    log = SqliteLog(tmp_path / "log.sqlite", index=wider)
    wider.open(NOW + WINDOW)  # past the old window, inside the new one
    assert wider.seen("kept") and wider.rebuilt == 1
    log.close()
    wider.close()
