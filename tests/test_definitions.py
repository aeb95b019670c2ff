"""Definitions through the pipeline: logged, replayed, checkpointed; time flips segments."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tsunagu.app import EMBEDDED
from tsunagu.core.config import WorkspaceConfig
from tsunagu.core.events import Event
from tsunagu.pipeline import WorkspacePipeline

NOW = 1_790_000_000_000  # 2026-09-21 23:13 JST
DAY = 86_400_000


def track(mid: str, uid: str, name: str, ts: int, props: bytes = b"{}", channel: str = "web") -> Event:
    return Event(mid, "track", name, uid, None, ts, ts, channel, None, props, {}, b"{}")


def identify(mid: str, uid: str, traits: dict[str, Any], ts: int) -> Event:
    return Event(mid, "identify", None, uid, None, ts, ts, "web", None, b"{}", traits, b"{}")


async def _open(path: Path, **config: Any) -> WorkspacePipeline:
    pipe = WorkspacePipeline("t", path, WorkspaceConfig(**config), EMBEDDED, flush_interval=3600)
    await pipe.open(NOW, background=False)
    return pipe


def _members(pipe: WorkspacePipeline, name: str) -> set[str]:
    return {uid for p in pipe.engine.persons.values() if name in p.segments for uid in p.identifiers["user_id"]}


def test_a_new_workspace_starts_with_the_retail_traits(tmp_path: Path) -> None:
    async def scenario() -> None:
        pipe = await _open(tmp_path)
        names = {d["name"] for d in pipe.definitions()}
        assert {"ltv", "store_purchase_count", "cross_channel_class", "favourite_category"} <= names
        await pipe.submit([track("1", "U1", "buy", NOW, b'{"revenue": 12000}', "store")], NOW)
        p = pipe.engine.lookup("user_id", "U1")
        values = pipe.engine.live.computed_values(p, NOW)
        assert values["ltv"] == 12000 and values["store_purchase_count"] == 1
        assert values["cross_channel_class"] == "store only"
        await pipe.close()

    asyncio.run(scenario())


def test_definitions_survive_a_restart_from_the_log_and_from_a_checkpoint(tmp_path: Path) -> None:
    async def scenario() -> None:
        pipe = await _open(tmp_path, retail_traits=False)
        await pipe.submit(
            [identify("1", "U1", {"rank": "gold"}, NOW), identify("2", "U2", {"rank": "silver"}, NOW)], NOW
        )
        out = await pipe.define("segment", "gold", {"rule": {"trait": "rank", "op": "eq", "value": "gold"}}, NOW)
        assert out["changed"] and out["status"] == "ready" and out["members"] == 1
        again = await pipe.define("segment", "gold", {"rule": {"trait": "rank", "op": "eq", "value": "gold"}}, NOW)
        assert again["changed"] is False and again["version"] == 1
        pipe._close_stores()  # a crash: no checkpoint, the log has it all
        pipe = await _open(tmp_path, retail_traits=False)
        assert _members(pipe, "gold") == {"U1"}
        await pipe.submit([identify("3", "U2", {"rank": "gold"}, NOW + 1)], NOW + 1)
        assert _members(pipe, "gold") == {"U1", "U2"}
        await pipe.checkpoint()
        await pipe.close()
        pipe = await _open(tmp_path, retail_traits=False)
        assert [d["name"] for d in pipe.definitions()] == ["gold"]
        assert _members(pipe, "gold") == {"U1", "U2"}
        await pipe.undefine("segment", "gold", NOW + 2)
        assert pipe.definitions() == [] and not _members(pipe, "gold")
        await pipe.close()

    asyncio.run(scenario())


def test_time_passing_flips_a_windowed_segment_and_rechecks_only_who_is_due(tmp_path: Path) -> None:
    async def scenario() -> None:
        pipe = await _open(tmp_path, retail_traits=False)
        rule = {"did": "view", "within_days": 2}
        await pipe.define("segment", "recent", {"rule": rule}, NOW)
        await pipe.submit([track("1", "U1", "view", NOW), track("2", "U2", "view", NOW - DAY)], NOW)
        await pipe.submit([identify("3", "U3", {"rank": "gold"}, NOW)], NOW)  # nothing windowed to expire
        assert _members(pipe, "recent") == {"U1", "U2"}
        live = pipe.engine.live
        assert live.due_count(NOW) == 0 and live.due_count(NOW + DAY) == 1  # U2: its view leaves the window
        assert live.due_count(NOW + 2 * DAY) == 2  # then U1; U3 has nothing windowed and is never re-checked
        assert await pipe.tick(NOW + DAY) == 1  # U2's view left the window at midnight
        assert _members(pipe, "recent") == {"U1"}
        assert await pipe.tick(NOW + DAY) == 0  # nothing due twice
        assert await pipe.tick(NOW + 2 * DAY) == 1
        assert _members(pipe, "recent") == set()
        assert live.due_count(NOW + 30 * DAY) == 0  # nobody left with anything windowed
        rows, _ = await pipe.timeline(pipe.engine.lookup("user_id", "U2"), types=["segment_exit"])
        assert [r["properties"]["segment"] for r in rows] == ["recent"]
        # the timer's decisions are log records: a replay makes the same ones
        pipe._close_stores()
        pipe = await _open(tmp_path, retail_traits=False)
        assert _members(pipe, "recent") == set()
        await pipe.close()

    asyncio.run(scenario())
