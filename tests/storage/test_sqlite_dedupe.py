"""The SQLite de-dup index: bounded memory, its filters and tables, its restarts.

What every `Deduper` answers (the window, discard, restarts, and the property test
against a plain set with a window) is in tests/contract/test_deduper.py; here is how this
one gets there. Everything is real: a SqliteLog whose writer thread writes the index in
its group commit, the filter files on disk, restarts that reopen both (with or without a
checkpoint first, as after a clean stop or a kill -9).
"""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec

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


def test_memory_holds_the_ids_in_flight_and_only_the_newest_committed_ones(tmp_path: Path) -> None:
    store = _Store(tmp_path, memory_ids=3)
    for i in range(10):
        store.dedupe.add([f"c{i}"], NOW + i)
        store.commit([f"c{i}"], NOW + i)
    store.dedupe.add(["in-flight-1", "in-flight-2"], NOW + 10)
    store.dedupe.advance(NOW + 10)
    assert len(store.dedupe) == 3 + 2  # the rest is on disk
    assert all(store.dedupe.seen(f"c{i}") for i in range(10))
    store.close()
