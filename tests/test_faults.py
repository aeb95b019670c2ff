"""One bad event harms only itself; a reopen leaves nothing behind (issue 9).

Real stores (SQLite log and state, DuckDB analytics) in a temporary directory; faults
are injected where the edge cannot reach: a bug in the engine, a row DuckDB refuses.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tsunagu.app import EMBEDDED, Platform
from tsunagu.core.config import WorkspaceConfig
from tsunagu.core.events import Event
from tsunagu.core.live import Live
from tsunagu.pipeline import WorkspacePipeline

NOW = 1_790_000_000_000
_enc = msgspec.msgpack.Encoder()


def track(mid: str, uid: str, name: str = "view", props: bytes = b'{"sku": "A1"}', ts: int = NOW) -> Event:
    return Event(mid, "track", name, uid, None, ts, ts, "web", None, props, {}, b"{}")


def identify(mid: str, uid: str, props: bytes = b"{}", traits: dict[str, Any] | None = None) -> Event:
    return Event(mid, "identify", None, uid, None, NOW, NOW, "web", None, props, traits or {}, b"{}")


async def _open(path: Path) -> WorkspacePipeline:
    pipe = WorkspacePipeline("t", path, WorkspaceConfig(), EMBEDDED, flush_interval=0.05)
    await pipe.open(NOW, background=False)
    return pipe


def persons(pipe: WorkspacePipeline) -> dict[str, bytes]:
    return {pid: _enc.encode(p) for pid, p in sorted(pipe.engine.persons.items())}


def poison(monkeypatch: pytest.MonkeyPatch, bad: set[str]) -> None:
    """An engine bug: observing these events fails after their user data was changed."""
    observe = Live.observe

    def failing(self: Live, p: Any, ev: Event, *args: Any) -> None:
        observe(self, p, ev, *args)
        if ev.message_id in bad:
            raise ZeroDivisionError("injected")

    monkeypatch.setattr(Live, "observe", failing)


def test_an_event_the_engine_fails_on_is_refused_alone_and_the_workspace_stays_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        pipe = await _open(tmp_path)
        await pipe.submit([track("0", "U1"), track("1", "U2")], NOW)
        await pipe.checkpoint()
        await pipe.submit([track("2", "U1", "buy", b'{"revenue": 100}')], NOW)  # in the tail
        poison(monkeypatch, {"bad-1", "bad-2"})
        result = await pipe.submit(
            [
                track("3", "U1"),
                track("bad-1", "U1", "buy", b'{"revenue": 5}'),  # an existing person
                track("4", "U2"),
                track("bad-2", "U9"),  # a person it would have created
                track("5", "U1", "cart"),
            ],
            NOW,
        )
        assert not pipe.failed
        assert result.accepted == 3
        assert [i for i, _ in result.refused] == [1, 3]
        assert all("ref q-" in reason and "not stored" in reason for _, reason in result.refused)
        assert pipe.engine.lookup("user_id", "U9") is None
        u1 = pipe.engine.lookup("user_id", "U1")
        assert u1 is not None and u1.event_count == 4  # 0, 2, 3, 5
        revenue = (await pipe.user_data(u1)).data["buy.revenue"][0]  # day buckets, from the analytics store
        assert revenue[next(iter(revenue))][2] == 100  # no 5 in the sum
        entries = pipe.quarantine.entries()
        assert [(e["source"], e["message_id"]) for e in entries] == [("engine", "bad-2"), ("engine", "bad-1")]
        assert "ZeroDivisionError" in entries[0]["reason"]
        assert msgspec.json.decode(entries[1]["body"])["properties"] == {"revenue": 5}
        # a fixed retry with the same messageId is taken, not dropped as a duplicate
        monkeypatch.undo()
        again = await pipe.submit([track("bad-1", "U1", "buy", b'{"revenue": 5}')], NOW)
        assert again.accepted == 1 and again.duplicates == 0
        before = persons(pipe)
        await pipe.close()
        reopened = await _open(tmp_path)  # from the checkpoint and the log: the same persons
        assert persons(reopened) == before
        rows = reopened.analytics.query("SELECT message_id FROM events WHERE type = 'track' ORDER BY 1")
        await reopened.flush()
        rows = reopened.analytics.query("SELECT message_id FROM events WHERE type = 'track' ORDER BY 1")
        assert [r[0] for r in rows] == ["0", "1", "2", "3", "4", "5", "bad-1"]
        await reopened.close()

    asyncio.run(scenario())


def test_a_row_the_analytics_store_refuses_is_moved_aside_and_the_writer_goes_on(tmp_path: Path) -> None:
    async def scenario() -> None:
        pipe = await _open(tmp_path)
        # Bytes the edge would refuse, handed straight to the pipeline: an identify's
        # properties are not read by the engine, so only DuckDB can refuse them.
        bad = identify("bad", "U1", props=b'{"s": "\xff"}')
        accepted = await pipe.submit([track("1", "U1"), bad, track("2", "U2")], NOW)
        await pipe.flush()  # would be 503 if the writer were stuck
        assert pipe.analytics.error is None
        rows = pipe.analytics.query("SELECT message_id FROM events WHERE type != 'merge' ORDER BY 1")
        assert [r[0] for r in rows] == ["1", "2"]
        (entry,) = pipe.quarantine.entries(source="analytics")
        assert entry["message_id"] == "bad" and entry["seq"] == accepted.seq
        assert "UTF" in entry["reason"] or "utf" in entry["reason"].lower()
        # and it keeps writing what comes next
        await pipe.submit([track("3", "U1")], NOW)
        await pipe.flush()
        assert pipe.analytics.query("SELECT count(*) FROM events WHERE message_id = '3'") == [(1,)]
        await pipe.close()

    asyncio.run(scenario())


def _handles() -> tuple[int, set[str]]:
    fds = len(os.listdir("/proc/self/fd"))
    # the event loop's executor keeps its worker threads: only the stores' threads count
    threads = {t.name for t in threading.enumerate() if not t.name.startswith(("asyncio_", "ThreadPoolExecutor"))}
    return fds, threads


def test_reopening_under_load_closes_every_handle_and_thread_and_answers_every_request(tmp_path: Path) -> None:
    async def scenario() -> None:
        platform = Platform(tmp_path, clock=lambda: NOW, flush_interval=0.05)
        platform.control.create_workspace("shop")
        pipe = await platform.pipeline("shop")
        await pipe.submit([track("warm", "U0")], NOW)
        await pipe.submit([track("warm-2", "U0")], NOW)  # the de-dup filter file opens with the first ids
        await pipe.flush()
        fds, threads = _handles()
        outcomes: dict[str, int] = {"ok": 0, "unavailable": 0}
        stop = asyncio.Event()

        async def client(n: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    p = await platform.pipeline("shop")
                    await p.submit([track(f"c{n}-{i}", f"U{n}")], NOW)
                    person = p.engine.lookup("user_id", f"U{n}")
                    if person is not None:
                        await p.timeline(person, limit=5)
                    outcomes["ok"] += 1
                except Exception as exc:  # only a clean 503 is allowed
                    assert type(exc).__name__ in ("Unavailable", "AnalyticsClosed"), repr(exc)
                    outcomes["unavailable"] += 1
                await asyncio.sleep(0)

        clients = [asyncio.create_task(client(n)) for n in range(4)]
        for _ in range(6):
            await asyncio.sleep(0.05)
            (await platform.pipeline("shop")).failed = True  # as after a storage error
            await platform.pipeline("shop")
        stop.set()
        await asyncio.gather(*clients)
        assert platform.reopens == 6
        assert outcomes["ok"] > 0
        pipe = await platform.pipeline("shop")
        await pipe.flush()
        assert _handles() == (fds, threads)
        await platform.close()

    asyncio.run(scenario())


def test_a_stored_definition_the_rules_now_refuse_is_skipped_and_the_workspace_opens(tmp_path: Path) -> None:
    refused = {"rule": {"did": "buy", "where": {"": 1}}}  # an empty `where` key: refused since issue 9

    async def scenario() -> None:
        pipe = await _open(tmp_path)
        await pipe.define("segment", "buyers", {"rule": {"did": "buy"}}, NOW)
        seq = pipe.applied_seq + 1
        pipe.applied_seq = seq
        body = _enc.encode({"kind": "segment", "name": "old", "body": refused, "now": NOW})
        done = asyncio.get_running_loop().create_future()
        pipe.log.append(
            seq, "define", NOW, body, b"", b"", lambda r: done.get_loop().call_soon_threadsafe(done.set_result, r)
        )
        await done  # as an older version stored it, without today's checks
        pipe._close_stores()  # a crash: the define is in the log tail
        reopened = await _open(tmp_path)
        assert ("segment", "buyers") in reopened.engine.live.definitions
        assert ("segment", "old") not in reopened.engine.live.definitions
        (entry,) = reopened.quarantine.entries(source="definition")
        assert "segment old" in entry["reason"]
        await reopened.close()

    asyncio.run(scenario())


def test_a_checkpointed_definition_the_rules_now_refuse_is_skipped_on_load() -> None:
    from zoneinfo import ZoneInfo

    live = Live(ZoneInfo("Asia/Tokyo"))
    state = {
        "definitions": [
            {"kind": "segment", "name": "ok", "body": {"rule": {"did": "buy"}}, "seq": 1, "version": 1},
            {"kind": "segment", "name": "old", "body": {"rule": {"did": "buy", "where": {"": 1}}}, "seq": 2,
             "version": 1},
            {"kind": "computed_trait", "name": "bad", "body": {"event": "buy", "agg": {}}, "seq": 3, "version": 1},
        ]
    }  # fmt: skip
    live.load_state(state, {}, NOW)
    assert set(live.segments) == {"ok"} and not live.computed
    assert [(k, n) for k, n, _ in live.skipped] == [("computed_trait", "bad"), ("segment", "old")]
