"""Append, upsert and replace make versions; a rollback brings one back exactly."""

from __future__ import annotations

import pytest

from tsunagu.core.errors import Conflict, InvalidInput, NotFound
from tsunagu.storage.duckdb_datahub import KEEP_VERSIONS

from .conftest import Hub

V1 = "member_id,rank,points\nM1,gold,100\nM2,silver,50\n"


def test_append_adds_rows_and_new_columns_to_the_current_version(hub: Hub) -> None:
    hub.load("members", "a.csv", V1.encode())
    r = hub.load("members", "b.csv", b"member_id,points,store\nM3,10,shibuya\n")
    assert (r.version, r.rows_imported, r.rows_total) == (2, 1, 3)
    assert [c for c, _ in r.columns] == ["member_id", "rank", "points", "store"]
    assert hub.rows("members") == [("M1", "gold", 100, None), ("M2", "silver", 50, None), ("M3", None, 10, "shibuya")]


def test_append_reads_new_rows_with_the_table_s_types(hub: Hub) -> None:
    hub.load("members", "a.csv", V1.encode())
    r = hub.load("members", "b.csv", b"member_id,rank,points\nM3,gold,lots\n")
    assert [(j.line, j.column, j.reason) for j in r.rejects] == [(2, "points", "'lots' is not an integer")]
    assert r.rows_total == 2


def test_upsert_replaces_rows_by_key_and_the_last_duplicate_wins(hub: Hub) -> None:
    hub.load("members", "a.csv", V1.encode())
    r = hub.load(
        "members", "b.csv", b"member_id,rank,points\nM2,gold,70\nM3,bronze,5\nM2,gold,80\n,gold,1\n",
        mode="upsert", key=("member_id",),
    )  # fmt: skip
    assert [(j.line, j.column, j.reason) for j in r.rejects] == [(5, "member_id", "the key is empty")]
    assert r.rows_imported == 3 and r.rows_total == 3
    assert sorted(hub.rows("members")) == [("M1", "gold", 100), ("M2", "gold", 80), ("M3", "bronze", 5)]


def test_replace_starts_over_with_the_new_file_s_columns(hub: Hub) -> None:
    hub.load("members", "a.csv", V1.encode())
    r = hub.load("members", "b.csv", b"id,score\n1,0.5\n", mode="replace")
    assert r.columns == [("id", "integer"), ("score", "number")] and hub.rows("members") == [(1, 0.5)]


def test_a_rollback_restores_an_earlier_version_exactly_and_is_recorded(hub: Hub) -> None:
    hub.load("members", "a.csv", V1.encode())
    before = hub.rows("members")
    hub.load("members", "b.csv", b"id,score\n1,0.5\n", mode="replace")
    t = hub.store.rollback("members", 1, hub.now + 1)
    assert t["version"] == 3 and hub.rows("members") == before
    assert [c["name"] for c in t["columns"]] == ["member_id", "rank", "points"]
    history = hub.store.versions("members")
    assert [(v["version"], v["mode"], v["restored_from"], v["current"]) for v in history] == [
        (3, "rollback", 1, True), (2, "replace", None, False), (1, "append", None, False),
    ]  # fmt: skip
    with pytest.raises(Conflict):
        hub.store.rollback("members", 3, hub.now + 2)
    with pytest.raises(NotFound):
        hub.store.rollback("members", 9, hub.now + 2)


def test_only_the_last_versions_keep_their_rows(hub: Hub) -> None:
    for i in range(KEEP_VERSIONS + 2):
        hub.load("t", "t.csv", f"n\n{i}\n".encode())
    history = hub.store.versions("t")
    assert len(history) == KEEP_VERSIONS + 2
    assert [v["version"] for v in history if v["pruned"]] == [2, 1]
    with pytest.raises(NotFound, match="pruned"):
        hub.store.rollback("t", 1, hub.now + 1)
    assert len(hub.rows("t")) == KEEP_VERSIONS + 2


def test_rejects_are_kept_per_version_and_a_table_can_be_dropped(hub: Hub) -> None:
    hub.load("t", "t.csv", b"a,b\n1,2\n3\n")
    hub.load("t", "u.csv", b"a,b\n4,5\n")
    assert [r.line for r in hub.store.rejects("t", 1)] == [3] and hub.store.rejects("t") == []
    hub.store.drop("t")
    assert hub.store.tables() == []
    assert hub.con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'datahub'"
    ).fetchone() == (0,)


def test_a_failed_import_leaves_the_current_version_as_it_was(hub: Hub) -> None:
    hub.load("t", "t.csv", b"a\n1\n")
    with pytest.raises(InvalidInput):
        hub.load("t", "u.parquet", b"not parquet")
    assert hub.store.table("t")["version"] == 1 and hub.rows("t") == [(1,)]
    assert hub.con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'datahub'"
        " AND table_name LIKE '\\_%' ESCAPE '\\'"
    ).fetchone() == (0,)
