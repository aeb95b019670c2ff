"""Back-fill: a definition added to a workspace with history counts that history, once.

A segment or computed trait added later must end up exactly as if it had been defined
before the first event, while events keep arriving, persons keep merging, and the process
may die in the middle of the back-fill.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

from tsunagu.app import EMBEDDED
from tsunagu.core.config import WorkspaceConfig
from tsunagu.core.engine import Engine
from tsunagu.core.events import Event
from tsunagu.pipeline import WorkspacePipeline

NOW = 1_790_000_000_000  # 2026-09-21 23:13 JST
DAY = 86_400_000
CONFIG = WorkspaceConfig(retail_traits=False)

SEGMENT = {"rule": {"all": [
    {"did": "buy", "channel": "store", "within_days": 30, "count": {"op": "gte", "value": 2}},
    {"not": {"did": "buy", "channel": "web"}},
]}}  # fmt: skip
STORE_AMOUNT = {"event": "buy", "channel": "store", "agg": "sum", "property": "revenue"}
FAVOURITE = {"event": "buy", "agg": "most_frequent", "property": "items.category"}


def history(n: int, seed: int, start: int) -> list[Event]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        uid = f"U{rng.randrange(40)}"
        ts = NOW - rng.randrange(60) * DAY - rng.randrange(DAY)
        if rng.random() < 0.1:  # a device that logs in later: a merge
            aid = f"A{rng.randrange(60)}"
            out.append(Event(f"m{start + i}", "track", "view", None, aid, ts, NOW, "web", None, b"{}", {}, b"{}"))
            out.append(Event(f"l{start + i}", "identify", None, uid, aid, ts, NOW, "web", None, b"{}", {}, b"{}"))
            continue
        props = {"revenue": rng.randrange(1, 50) * 1000, "items": [{"category": rng.choice(["アウター", "トップス"])}]}
        channel = rng.choice(["store", "store", "web"])
        out.append(
            Event(f"m{start + i}", "track", "buy", uid, None, ts, NOW, channel, None, json.dumps(props).encode(), {},
                  b"{}")
        )  # fmt: skip
    return out


def _state(persons: dict[str, Any], live: Any) -> dict[str, Any]:
    """What the definitions produced, per user id (person ids differ between engines)."""
    out = {}
    for p in persons.values():
        key = ",".join(sorted(p.identifiers.get("user_id", []) + p.identifiers.get("anonymous_id", [])))
        out[key] = ("loyal" in p.segments, live.computed_values(p, NOW))
    return out


def _expected(events: list[Event]) -> dict[str, Any]:
    engine = Engine(CONFIG, namespace="t")
    engine.define("computed_trait", "store_amount", STORE_AMOUNT, 1, NOW)
    engine.define("computed_trait", "favourite", FAVOURITE, 2, NOW)
    engine.define("segment", "loyal", SEGMENT, 3, NOW)
    engine.apply(events)
    return _state(engine.persons, engine.live)


async def _open(path: Path) -> WorkspacePipeline:
    pipe = WorkspacePipeline("t", path, CONFIG, EMBEDDED, flush_interval=0.05, clock=lambda: NOW)
    await pipe.open(NOW, background=False)
    pipe.backfill_chunk = 5  # persons a page: many pages
    return pipe


async def _define_all(pipe: WorkspacePipeline) -> None:
    await pipe.define("computed_trait", "store_amount", STORE_AMOUNT, NOW)
    await pipe.define("computed_trait", "favourite", FAVOURITE, NOW)
    out = await pipe.define("segment", "loyal", SEGMENT, NOW)
    assert out["status"] == "building" and out["backfill"]


def test_a_definition_added_later_counts_the_history_exactly_once(tmp_path: Path) -> None:
    before, after = history(300, 1, 0), history(100, 2, 1000)

    async def scenario() -> None:
        pipe = await _open(tmp_path)
        for i in range(0, len(before), 50):
            await pipe.submit(before[i : i + 50], NOW)
        await _define_all(pipe)
        assert not any("loyal" in p.segments for p in pipe.engine.persons.values())  # building: no entries yet
        await pipe.backfill_step()
        await pipe.backfill_step()
        await pipe.submit(after[:50], NOW)  # ingest goes on in the middle of the back-fill
        await pipe.wait_for_backfills()
        await pipe.submit(after[50:], NOW)
        assert pipe.definition("segment", "loyal")["status"] == "ready"
        assert _state(pipe.engine.persons, pipe.engine.live) == _expected(before + after)
        await pipe.close()

    asyncio.run(scenario())


def test_a_restart_in_the_middle_of_a_back_fill_loses_nothing_and_counts_nothing_twice(tmp_path: Path) -> None:
    before, after = history(300, 3, 0), history(60, 4, 1000)

    async def scenario() -> None:
        pipe = await _open(tmp_path)
        for i in range(0, len(before), 50):
            await pipe.submit(before[i : i + 50], NOW)
        await _define_all(pipe)
        for _ in range(3):
            await pipe.backfill_step()
        await pipe.submit(after[:30], NOW)
        await pipe.checkpoint()  # a checkpoint holding a half-done back-fill
        await pipe.backfill_step()
        await pipe.backfill_step()
        pipe._close_stores()  # killed: two pages after the checkpoint are only in the log
        pipe = await _open(tmp_path)
        assert pipe.engine.live.backfills  # it resumes where the log says it stopped
        await pipe.submit(after[30:], NOW)
        await pipe.wait_for_backfills()
        assert _state(pipe.engine.persons, pipe.engine.live) == _expected(before + after)
        pipe._close_stores()  # and once more, from the log alone after it finished
        pipe = await _open(tmp_path)
        assert _state(pipe.engine.persons, pipe.engine.live) == _expected(before + after)
        await pipe.close()

    asyncio.run(scenario())


def test_a_back_fill_replaced_midway_leaves_no_grouped_rows_behind(tmp_path: Path) -> None:
    def tables(pipe: WorkspacePipeline) -> list[str]:
        sql = "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'backfill%'"
        rows = pipe.analytics.query(sql)
        return [r[0] for r in rows]

    async def scenario() -> None:
        pipe = await _open(tmp_path)
        await pipe.submit(history(100, 5, 0), NOW)
        await pipe.define("computed_trait", "store_amount", STORE_AMOUNT, NOW)
        await pipe.backfill_step()  # groups the history into a table, applies a page
        (old,) = tables(pipe)
        await pipe.define("computed_trait", "store_amount", {**STORE_AMOUNT, "channel": "web"}, NOW)
        assert old not in tables(pipe)  # the replaced back-fill's rows are gone (the new one may have begun)
        await pipe.wait_for_backfills()
        await pipe.undefine("computed_trait", "store_amount", NOW)
        assert tables(pipe) == []
        await pipe.close()

    asyncio.run(scenario())
