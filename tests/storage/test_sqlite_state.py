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
