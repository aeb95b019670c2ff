"""The person store on real SQLite files: the number of persons it keeps in meta.

The figure is written in each checkpoint's transaction, so it always equals a count of the
rows: across reopening, after a process killed in the middle of a checkpoint, and for a
store written before the figure was kept (counted once, at open).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsunagu.storage.sqlite_state import SqliteStateStore

SRC = Path(__file__).resolve().parents[2] / "src"


def _rows(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT count(*) FROM persons").fetchone()[0]
    finally:
        con.close()


def _meta(path: Path, key: str) -> object:
    con = sqlite3.connect(path)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None
    finally:
        con.close()


_checkpoint = st.tuples(
    st.lists(st.integers(0, 30), max_size=12),  # persons written (new or again)
    st.lists(st.integers(0, 30), max_size=6),  # persons removed (stored or not)
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(checkpoints=st.lists(_checkpoint, min_size=1, max_size=8), reopen=st.sets(st.integers(0, 7)))
def test_the_kept_count_equals_a_count_of_the_rows(tmp_path_factory: pytest.TempPathFactory,
                                                   checkpoints: list[tuple[list[int], list[int]]],
                                                   reopen: set[int]) -> None:  # fmt: skip
    path = tmp_path_factory.mktemp("state") / "state.sqlite"
    store = SqliteStateStore(path)
    try:
        for seq, (written, removed) in enumerate(checkpoints, 1):
            persons = [(f"p{i}", f"body {i} {seq}".encode()) for i in dict.fromkeys(written)]
            store.save(seq, persons, [f"p{i}" for i in dict.fromkeys(removed)])
            assert store.count() == _rows(path)
            if seq in reopen:
                store.close()
                store = SqliteStateStore(path)
                assert store.count() == _rows(path)
    finally:
        store.close()


def test_opening_reads_the_figure_instead_of_counting(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = SqliteStateStore(path)
    store.save(1, [("p1", b"a"), ("p2", b"b"), ("p3", b"c")], [])
    store.save(2, [("p2", b"b2"), ("p4", b"d")], ["p1", "gone"])
    store.close()
    assert (_meta(path, "persons"), _meta(path, "persons_seq")) == (3, 2)

    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = 1000000 WHERE key = 'persons'")  # a figure no count gives
    con.commit()
    con.close()
    store = SqliteStateStore(path)
    assert store.count() == 1_000_000  # read from meta: opening did not count the rows
    store.close()


def test_a_store_without_the_figure_is_counted_once(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = SqliteStateStore(path)
    store.save(7, [(f"p{i}", b"x") for i in range(25)], [])
    store.close()
    con = sqlite3.connect(path)  # as a store written before the figure was kept
    con.execute("DELETE FROM meta WHERE key IN ('persons', 'persons_seq')")
    con.commit()
    con.close()

    store = SqliteStateStore(path)
    assert store.count() == 25
    store.close()
    assert (_meta(path, "persons"), _meta(path, "persons_seq")) == (25, 7)  # kept from now on
    store = SqliteStateStore(path)
    store.save(8, [("p0", b"y"), ("p99", b"z")], ["p1"])
    assert store.count() == 25 == _rows(path)
    store.close()


def test_a_checkpoint_written_without_the_figure_is_counted_again(tmp_path: Path) -> None:
    """An older version writes a checkpoint (seq moves, the figure does not): counted."""
    path = tmp_path / "state.sqlite"
    store = SqliteStateStore(path)
    store.save(1, [("p1", b"a")], [])
    store.close()
    con = sqlite3.connect(path)
    con.execute("INSERT INTO persons VALUES ('p2', x'00'), ('p3', x'00')")
    con.execute("UPDATE meta SET value = 2 WHERE key = 'applied_seq'")
    con.commit()
    con.close()

    store = SqliteStateStore(path)
    assert store.count() == 3
    store.close()


def test_clear_keeps_a_figure_of_zero(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = SqliteStateStore(path)
    store.save(3, [("p1", b"a"), ("p2", b"b")], [])
    store.clear()
    assert store.count() == 0
    store.save(1, [("p9", b"a")], [])
    store.close()
    store = SqliteStateStore(path)
    assert store.count() == 1 == _rows(path)
    store.close()


# The child saves one checkpoint, then dies (os._exit: no rollback, no close, like kill -9)
# when the second one's transaction reaches the statement given: the figure and the rows
# are one transaction, so either both are in the file or neither.
_CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from tsunagu.storage.sqlite_state import SqliteStateStore

    store = SqliteStateStore(Path(sys.argv[1]))
    store.save(1, [(f"p{i}", b"first") for i in range(10)], [])
    marker = sys.argv[2]

    def trace(sql):
        if sql.lstrip().startswith(marker):
            os._exit(3)

    store._con.set_trace_callback(trace)
    store.save(2, [(f"p{i}", b"second") for i in range(5, 20)], ["p0", "p1", "p2"], keys={"user_id:u": "p5"})
    os._exit(0)
    """
)


@pytest.mark.parametrize(
    "dies_at",
    ["UPDATE persons", "INSERT OR IGNORE INTO persons", "INSERT OR REPLACE INTO ident", "INSERT OR REPLACE INTO meta",
     "COMMIT", "(after the commit)"],
)  # fmt: skip
def test_a_crash_in_the_middle_of_a_checkpoint_keeps_figure_and_rows_together(tmp_path: Path, dies_at: str) -> None:
    path = tmp_path / "state.sqlite"
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    child = subprocess.run([sys.executable, "-c", _CHILD, str(path), dies_at], env=env, capture_output=True, timeout=60)
    committed = dies_at == "(after the commit)"
    assert child.returncode == (0 if committed else 3), child.stderr.decode()

    store = SqliteStateStore(path)
    try:
        assert store.count() == _rows(path) == (17 if committed else 10)
        assert _meta(path, "persons_seq") == _meta(path, "applied_seq") == (2 if committed else 1)
    finally:
        store.close()


# -- the key filter: an exact "not stored" -----------------------------------------------


class _Model:
    """What the store holds, as plain dictionaries."""

    def __init__(self) -> None:
        self.persons: dict[str, bytes] = {}
        self.keys: dict[str, str] = {}

    def save(self, written: dict[str, bytes], removed: list[str], keys: dict[str, str | None]) -> None:
        for pid in removed:
            self.persons.pop(pid, None)
        self.persons.update(written)
        for k, v in keys.items():
            if v is None:
                self.keys.pop(k, None)
            else:
                self.keys[k] = v


def _answers_like(store: SqliteStateStore, model: _Model, persons: list[str], keys: list[str]) -> None:
    for pid in persons:
        assert store.person(pid) == model.persons.get(pid), pid
    for k in keys:
        assert store.key(k) == model.keys.get(k), k


_PIDS = [f"p{i}" for i in range(24)]
_KEYS = [f"user_id:u{i}" for i in range(16)] + [f"anonymous_id:a{i}" for i in range(16)]
_op = st.one_of(
    st.tuples(  # a checkpoint: persons written and removed (a merge's loser, a forget), keys set or deleted
        st.just("save"),
        st.lists(st.sampled_from(_PIDS), max_size=6),
        st.lists(st.sampled_from(_PIDS), max_size=3),
        st.dictionaries(st.sampled_from(_KEYS), st.one_of(st.none(), st.sampled_from(_PIDS)), max_size=6),
    ),
    st.tuples(st.sampled_from(["reopen", "crash", "lose_filter", "clear"])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, min_size=1, max_size=14))
def test_the_filtered_store_answers_like_the_model(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, ops: list[Any]
) -> None:
    """Every lookup (stored, never stored, deleted, stored again) gives the model's answer,
    across reopening, a crash (the old store never closed), lost filter files and clear.
    Filters of 4 keys, so the chain grows many times."""
    monkeypatch.setattr("tsunagu.storage.key_filter.MIN_CAPACITY", 4)
    path = tmp_path_factory.mktemp("state") / "state.sqlite"
    store, model, seq, abandoned = SqliteStateStore(path), _Model(), 0, []
    try:
        for op in ops:
            if op[0] == "save":
                _, written, removed, keys = op
                seq += 1
                bodies = {pid: f"{pid}@{seq}".encode() for pid in written}
                store.save(seq, list(bodies.items()), list(dict.fromkeys(removed)), keys=keys)
                model.save(bodies, list(dict.fromkeys(removed)), keys)
            elif op[0] == "clear":
                store.clear()
                model, seq = _Model(), 0
            else:
                if op[0] == "crash":
                    abandoned.append(store)  # never closed: its files are as they are
                else:
                    store.close()
                if op[0] == "lose_filter":
                    for f in (path.parent / "state-keys").iterdir():
                        f.unlink()
                store = SqliteStateStore(path)
                assert store.filter_built == (op[0] == "lose_filter")
            _answers_like(store, model, _PIDS, _KEYS)
    finally:
        store.close()
        for old in abandoned:
            old.close()


def test_new_keys_are_answered_without_a_read(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = SqliteStateStore(path)
    store.save(1, [(f"p{i}", b"x") for i in range(2000)], [], keys={f"user_id:u{i}": f"p{i}" for i in range(2000)})
    for i in range(2000, 12000):
        assert store.key(f"user_id:u{i}") is None
        assert store.person(f"p{i}") is None
    assert store.key("user_id:u7") == "p7" and store.person("p7") == b"x"
    # 1 % false positives a filter: each is one read that finds nothing, as before
    assert store.reads["key.absent"] + store.reads["key.missed"] == 10_000
    assert store.reads["key.missed"] < 300 and store.reads["person.missed"] < 300
    assert store.reads["key.found"] == 1 and store.reads["person.found"] == 1
    store.close()


def test_a_restart_opens_the_filter_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = SqliteStateStore(path)
    assert store.filter_built  # a new store: an empty filter
    store.save(1, [("p1", b"a")], [], keys={"user_id:u1": "p1"})
    store.close()
    store = SqliteStateStore(path)
    assert not store.filter_built
    assert store.key("user_id:u1") == "p1" and store.person("p1") == b"a"
    assert store.reads["key.absent"] == 0
    store.close()


def test_a_store_without_a_filter_gets_one_built_from_its_tables(tmp_path: Path) -> None:
    """A store written before the filter was kept (or with the filter switched off)."""
    path = tmp_path / "state.sqlite"
    store = SqliteStateStore(path, key_filter=False)
    store.save(4, [("p1", b"a"), ("p2", b"b")], [], keys={"user_id:u1": "p1", "anonymous_id:a2": "p2"})
    store.close()
    assert not (tmp_path / "state-keys").exists()
    store = SqliteStateStore(path)
    assert store.filter_built
    assert store.key("user_id:u1") == "p1" and store.key("anonymous_id:a2") == "p2" and store.person("p2") == b"b"
    assert store.key("user_id:u2") is None
    store.close()


def _copy_filter(src: Path, dst: Path) -> None:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())


@pytest.mark.parametrize("stale", ["restored copy", "older writer", "other store", "corrupt file", "bad json"])
def test_a_filter_that_may_lack_keys_is_rebuilt(tmp_path: Path, stale: str) -> None:
    path = tmp_path / "state.sqlite"
    keys_dir = tmp_path / "state-keys"
    store = SqliteStateStore(path)
    store.save(1, [("p1", b"a")], [], keys={"user_id:u1": "p1"})
    store.close()
    _copy_filter(keys_dir, tmp_path / "copy")
    store = SqliteStateStore(path)
    store.save(2, [("p2", b"b")], [], keys={"user_id:u2": "p2"})
    store.close()

    if stale == "restored copy":  # the filter files of an older copy beside a newer database
        for f in keys_dir.iterdir():
            f.unlink()
        keys_dir.rmdir()
        (tmp_path / "copy").rename(keys_dir)
    elif stale == "older writer":  # a checkpoint by a version that knows no filter
        con = sqlite3.connect(path)
        con.execute("INSERT INTO persons VALUES ('p3', x'63')")
        con.execute("INSERT INTO ident VALUES ('user_id:u3', 'p3')")
        con.execute("UPDATE meta SET value = 3 WHERE key = 'applied_seq'")
        con.commit()
        con.close()
    elif stale == "other store":  # another workspace's database copied in
        other = tmp_path / "other" / "state.sqlite"
        other.parent.mkdir()
        o = SqliteStateStore(other, key_filter=False)
        o.save(1, [("q1", b"q")], [], keys={"user_id:v1": "q1"})
        o.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        (tmp_path / "other" / "state.sqlite").rename(path)
    elif stale == "corrupt file":
        bloom = next(keys_dir.glob("*.0.bloom"))
        bloom.write_bytes(bloom.read_bytes()[:100])
    else:
        (keys_dir / "filters.json").write_text("{not json")

    store = SqliteStateStore(path)
    try:
        assert store.filter_built
        con = sqlite3.connect(path)
        stored_keys = con.execute("SELECT key, person_id FROM ident").fetchall()
        stored_persons = con.execute("SELECT person_id, body FROM persons").fetchall()
        con.close()
        assert stored_keys and stored_persons
        for k, pid in stored_keys:
            assert store.key(k) == pid
        for pid, body in stored_persons:
            assert store.person(pid) == body
    finally:
        store.close()


# The child saves one checkpoint, then dies at a point of the second: before its
# transaction, at the commit, after the commit but before the filter records the seq, or
# while the filter grows a file. The reopened store finds every stored key.
_FILTER_CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import tsunagu.storage.key_filter as key_filter
    from tsunagu.storage.sqlite_state import SqliteStateStore

    key_filter.MIN_CAPACITY = 8
    store = SqliteStateStore(Path(sys.argv[1]))
    store.save(1, [(f"p{i}", b"first") for i in range(3)], [], keys={f"user_id:u{i}": f"p{i}" for i in range(3)})
    point = sys.argv[2]
    if point in ("BEGIN IMMEDIATE", "COMMIT"):
        store._con.set_trace_callback(lambda sql: sql.startswith(point) and os._exit(3))
    elif point == "covers":
        store.filter.covers = lambda seq: os._exit(3)
    elif point == "growing":
        new = store.filter._new
        def dies(capacity):
            new(capacity)
            os._exit(3)
        store.filter._new = dies
    store.save(2, [(f"p{i}", b"second") for i in range(40)], ["p0"], keys={f"user_id:u{i}": f"p{i}" for i in range(40)})
    os._exit(0)
    """
)


@pytest.mark.parametrize("point", ["BEGIN IMMEDIATE", "growing", "COMMIT", "covers", "(none)"])
def test_a_crash_during_a_checkpoint_never_loses_a_key(tmp_path: Path, point: str) -> None:
    path = tmp_path / "state.sqlite"
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    child = subprocess.run([sys.executable, "-c", _FILTER_CHILD, str(path), point], env=env, capture_output=True,
                           timeout=60)  # fmt: skip
    assert child.returncode == (0 if point == "(none)" else 3), child.stderr.decode()

    store = SqliteStateStore(path)
    try:
        # after the commit, before the seq is recorded: the filter cannot prove it covers
        assert store.filter_built == (point == "covers")
        con = sqlite3.connect(path)
        stored_keys = con.execute("SELECT key, person_id FROM ident").fetchall()
        stored_persons = con.execute("SELECT person_id, body FROM persons").fetchall()
        con.close()
        assert len(stored_keys) == (40 if point in ("covers", "(none)") else 3)
        for k, pid in stored_keys:
            assert store.key(k) == pid
        for pid, body in stored_persons:
            assert store.person(pid) == body
        assert store.key("user_id:u99") is None
    finally:
        store.close()


def test_a_seq_the_filter_cannot_record_does_not_fail_the_committed_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.sqlite"
    store = SqliteStateStore(path)

    def full(seq: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.filter, "covers", full)
    store.save(1, [("p1", b"a")], [], keys={"user_id:u1": "p1"})  # committed: no error for the pipeline to undo
    assert store.count() == 1 and store.key("user_id:u1") == "p1"
    store.close()
    store = SqliteStateStore(path)
    assert store.filter_built  # the files could not say they cover seq 1
    assert store.key("user_id:u1") == "p1" and store.person("p1") == b"a"
    store.close()
