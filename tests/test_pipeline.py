"""Recovery of the embedded pipeline: the log is the truth, everything else catches up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tsunagu.app import EMBEDDED
from tsunagu.core.config import WorkspaceConfig
from tsunagu.core.events import Event
from tsunagu.pipeline import WorkspacePipeline

NOW = 1_790_000_000_000


def ev(mid: str, typ: str, *, uid: str | None = None, aid: str | None = None, ts: int = NOW) -> Event:
    return Event(mid, typ, "view" if typ == "track" else None, uid, aid, ts, ts, "web", None, b'{"n": 1}', {}, b"{}")


async def _open(path: Path) -> WorkspacePipeline:
    # analytics writes only when a read asks for it, so tests can leave it behind
    pipe = WorkspacePipeline("t", path, WorkspaceConfig(), EMBEDDED, flush_interval=3600)
    await pipe.open(NOW, background=False)
    return pipe


def _crash(pipe: WorkspacePipeline) -> None:
    """Stop without a final checkpoint or analytics catch-up, like a kill -9."""
    pipe._close_stores()


def _analytics(pipe: WorkspacePipeline, sql: str) -> list[tuple]:
    return pipe.analytics.query(sql)


def test_restart_replays_the_log_tail_into_state_and_analytics(tmp_path: Path) -> None:
    async def scenario() -> None:
        pipe = await _open(tmp_path)
        await pipe.submit([ev("1", "track", aid="A"), ev("2", "track", aid="B")], NOW)
        await pipe.flush()
        await pipe.checkpoint()  # state and analytics at seq 1
        await pipe.submit([ev("3", "identify", uid="M", aid="A")], NOW)
        await pipe.checkpoint()  # state at seq 2, analytics still at 1
        await pipe.submit([ev("4", "identify", uid="M", aid="B")], NOW)  # merge; in the log only
        _crash(pipe)

        pipe = await _open(tmp_path)
        person = pipe.engine.lookup("user_id", "M")
        assert person is not None and person.event_count == 4
        assert sorted(person.identifiers["anonymous_id"]) == ["A", "B"]
        await pipe.flush()  # analytics catches up from the log alone
        rows = _analytics(pipe, "SELECT message_id FROM events WHERE type <> 'merge' ORDER BY message_id")
        assert [r[0] for r in rows] == ["1", "2", "3", "4"]
        canon = _analytics(pipe, "SELECT DISTINCT canonical_person_id FROM person_events WHERE type <> 'merge'")
        assert canon == [(person.person_id,)]
        assert _analytics(pipe, "SELECT person_id FROM people") == [(person.person_id,)]
        # messageIds seen before the crash are still de-duplicated
        result = await pipe.submit([ev("3", "identify", uid="M", aid="A")], NOW)
        assert (result.accepted, result.duplicates) == (0, 1)
        await pipe.close()

    asyncio.run(scenario())


def test_forget_survives_a_crash_before_the_checkpoint(tmp_path: Path) -> None:
    async def scenario() -> None:
        pipe = await _open(tmp_path)
        await pipe.submit([ev("1", "track", uid="M"), ev("2", "track", uid="K")], NOW)
        await pipe.checkpoint()
        pid = pipe.engine.lookup("user_id", "M").person_id  # type: ignore[union-attr]
        result = await pipe.forget(pid, NOW)
        assert result["events"] == 1 and result["log_records_rewritten"] == 1
        _crash(pipe)

        pipe = await _open(tmp_path)
        assert pipe.engine.lookup("user_id", "M") is None
        assert pipe.engine.lookup("user_id", "K") is not None
        await pipe.flush()
        assert _analytics(pipe, "SELECT message_id FROM events") == [("2",)]
        await pipe.close()

    asyncio.run(scenario())


def test_forget_removes_the_conflict_entries_on_other_timelines_that_name_the_person(tmp_path: Path) -> None:
    async def scenario() -> None:
        pipe = await _open(tmp_path)
        await pipe.submit([ev("1", "identify", uid="U1", aid="A"), ev("2", "identify", uid="U2", aid="A")], NOW)
        await pipe.flush()
        conflicts = "SELECT count(*) FROM events WHERE type = 'identity_conflict'"
        assert _analytics(pipe, conflicts) == [(1,)]
        await pipe.forget(pipe.engine.lookup("user_id", "U1").person_id, NOW)  # type: ignore[union-attr]
        assert _analytics(pipe, conflicts) == [(0,)]
        assert _analytics(pipe, "SELECT count(*) FROM events WHERE properties LIKE '%U1%'") == [(0,)]
        await pipe.close()

    asyncio.run(scenario())


def test_forget_drops_the_conflict_records_others_keep_finding_them_in_the_timeline(tmp_path: Path) -> None:
    """The persons holding a conflict that names the forgotten one come from their
    timelines, not from a pass over every person (30 others here, none looked at)."""

    def everyone() -> None:
        raise AssertionError("forget looked at every person")

    async def scenario() -> None:
        pipe = await _open(tmp_path)
        crowd = [ev(f"c{i}", "identify", uid=f"C{i}", aid=f"a{i}") for i in range(30)]
        await pipe.submit([*crowd, ev("1", "identify", uid="U1", aid="A"), ev("2", "identify", uid="U2", aid="A")], NOW)
        await pipe.checkpoint()
        u1, u2 = (pipe.engine.lookup("user_id", u) for u in ("U1", "U2"))
        assert u1 is not None and u2 is not None
        holder, gone = (u1, u2) if u1.conflicts else (u2, u1)
        assert holder.conflicts and not gone.conflicts
        pipe.engine.persons.values = everyone  # type: ignore[method-assign]
        await pipe.forget(gone.person_id, NOW)
        del pipe.engine.persons.values
        kept = pipe.engine.get(holder.person_id)
        assert kept is not None and kept.conflicts == []
        _crash(pipe)

        pipe = await _open(tmp_path)
        again = pipe.engine.get(holder.person_id)
        assert again is not None and again.conflicts == []
        assert pipe.engine.get(gone.person_id) is None
        await pipe.close()

    asyncio.run(scenario())
