"""The SQLite person store's member index: a store from before it fills it once at open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from tsunagu.core.people import Person
from tsunagu.storage.sqlite_state import SqliteStateStore


def test_a_store_written_before_the_member_index_fills_it_from_the_persons_at_open(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = SqliteStateStore(path)
    people = [Person(person_id="p2", segments=["vip", "gold"]), Person(person_id="p1", segments=["vip"]),
              Person(person_id="p3")]  # fmt: skip
    store.save(9, [(p.person_id, msgspec.msgpack.encode(p)) for p in people], [])
    store.close()
    con = sqlite3.connect(path)  # as an older version left it: persons, no index
    con.execute("DELETE FROM member")
    con.execute("DELETE FROM meta WHERE key = 'members'")
    con.commit()
    con.close()

    store = SqliteStateStore(path)
    assert store.members("vip", "", 10) == ["p1", "p2"] and store.members("gold", "", 10) == ["p2"]
    store.close()
    store = SqliteStateStore(path)  # once: a second open finds it kept
    assert store.members("vip", "", 10) == ["p1", "p2"]
    store.close()
