"""A segment defined on a workspace with history: its report's earlier days are reconstructed.

Forty days of purchases (Tokyo days, one at 23:30 and one at 00:30 to straddle midnight)
arrive before the segment "bought within 7 days" is defined. The days before the
definition must come from those events, marked `reconstructed`, and agree with the
members counted here by hand; the definition day must not count everyone as entering;
history that arrives later is reconstructed again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from ..cli.test_cli import tsunagu
from ..clocked import JST, ClockedServer, jst
from ..conftest import Workspace

RULE = {"did": "buy", "within_days": 7}
DEFINED = date(2026, 3, 1)


def _buys() -> list[tuple[str, int]]:
    """(user, when) of every purchase: U0..U7 buying every few days through January and February."""
    out = []
    for k in range(8):
        day = date(2026, 1, 20) + timedelta(days=k)
        while day < DEFINED:
            out.append((f"U{k}", jst(day.year, day.month, day.day, 12, 0)))
            day += timedelta(days=3 + 2 * k)
    out.append(("U8", jst(2026, 2, 10, 23, 30)))  # late evening in Tokyo (14:30 UTC)
    out.append(("U9", jst(2026, 2, 11, 0, 30)))  # just after midnight (the 10th in UTC)
    return out


def _local(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(JST).date()


def _members(buys: list[tuple[str, int]], day: date) -> set[str]:
    """Who had bought within the 7 calendar days up to `day` (first seen by then)."""
    return {u for u, ts in buys if day - timedelta(days=6) <= _local(ts) <= day}


def _expected(buys: list[tuple[str, int]], days: list[date]) -> list[tuple[str, int, int, int]]:
    out = []
    for d in days:
        now, before = _members(buys, d), _members(buys, d - timedelta(days=1))
        out.append((d.isoformat(), len(now - before), len(before - now), len(now)))
    return out


def _send(ws: Workspace, buys: list[tuple[str, int]]) -> None:
    batch = [
        {"type": "track", "event": "buy", "userId": u, "properties": {"revenue": 1000},
         "timestamp": datetime.fromtimestamp(ts / 1000, UTC).isoformat(), "messageId": f"{u}-{ts}"}
        for u, ts in buys
    ]  # fmt: skip
    r = ws.ingest("/v1/batch", {"batch": batch})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def clocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockedServer]:
    srv = ClockedServer(tmp_path_factory.mktemp("history"), jst(2026, 3, 1, 10, 0)).start()
    yield srv
    srv.stop()


def _wait(clocked: ClockedServer, ws: Workspace) -> None:
    async def wait() -> None:
        pipe = await clocked.platform.pipeline(ws.name)
        await pipe.histories.wait()

    clocked.run(wait())


def _built(clocked: ClockedServer, ws: Workspace) -> None:
    """Wait for the segment's back-fill (its live size counts only once it is built)."""

    async def wait() -> None:
        pipe = await clocked.platform.pipeline(ws.name)
        for _ in range(600):
            if not pipe.engine.live.backfills:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the back-fill did not finish: {pipe.engine.live.backfills}")

    clocked.run(wait())


def _report(ws: Workspace, **params: Any) -> dict[str, Any]:
    with ws.client() as c:
        r = c.get("/api/v1/segments/recent/report", params=params)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def defined(clocked: ClockedServer) -> Workspace:
    ws = clocked.create_workspace()
    clocked.now = jst(2026, 3, 1, 10, 0)
    _send(ws, _buys())
    clocked.define_segment(ws, "recent", RULE)
    _wait(clocked, ws)
    return ws


def test_the_days_before_the_definition_are_reconstructed_from_the_events(defined: Workspace) -> None:
    body = _report(defined, days=45)
    assert body["history"]["status"] == "done" and body["history"]["defined"] == "2026-03-01"
    days = body["days"]
    assert [d["source"] for d in days] == ["reconstructed"] * 44 + ["live"]
    want = _expected(_buys(), [date.fromisoformat(d["day"]) for d in days])
    assert [(d["day"], d["entries"], d["exits"], d["size"]) for d in days] == want
    # the midnight pair: U8 on the 10th, U9 on the 11th (Tokyo days, not UTC's)
    by_day = {d["day"]: d for d in days}
    assert by_day["2026-02-10"]["entries"] >= 1 and by_day["2026-02-11"]["entries"] >= 1
    assert by_day["2026-02-17"]["exits"] >= 1  # U8's week ends: a real exit, counted


def test_the_definition_day_counts_only_the_change_since_the_day_before(defined: Workspace) -> None:
    today = _report(defined, days=1)["days"][0]
    members = _members(_buys(), DEFINED)
    before = _members(_buys(), DEFINED - timedelta(days=1))
    assert today["size"] == len(members) > 0
    assert (today["entries"], today["exits"]) == (len(members - before), len(before - members))
    assert today["entries"] < today["size"]  # not everyone "entered" on the day it was defined


def test_history_that_arrives_later_is_reconstructed_again(clocked: ClockedServer) -> None:
    ws = clocked.create_workspace()
    clocked.now = jst(2026, 3, 1, 10, 0)
    clocked.define_segment(ws, "recent", RULE)  # defined first, history imported after (the demo's order)
    _wait(clocked, ws)
    assert all(d["size"] == 0 for d in _report(ws, days=30)["days"][:-1])
    _send(ws, _buys())
    _wait(clocked, ws)
    days = _report(ws, days=30)["days"]
    want = _expected(_buys(), [date.fromisoformat(d["day"]) for d in days])
    assert [(d["day"], d["entries"], d["exits"], d["size"]) for d in days][:-1] == want[:-1]


def test_a_changed_definition_reconstructs_its_own_history(clocked: ClockedServer, defined: Workspace) -> None:
    clocked.define_segment(defined, "recent", {"did": "buy", "within_days": 3})
    _wait(clocked, defined)
    days = _report(defined, days=20)["days"]

    def members(day: date) -> set[str]:
        return {u for u, ts in _buys() if day - timedelta(days=2) <= _local(ts) <= day}

    got = [(d["day"], d["size"]) for d in days if d["source"] == "reconstructed"]
    assert got and got == [(d, len(members(date.fromisoformat(d)))) for d, _ in got]
    clocked.define_segment(defined, "recent", RULE)
    _wait(clocked, defined)


def test_the_report_needs_the_api_token(defined: Workspace) -> None:
    r = httpx.get(f"{defined.url}/api/v1/segments/recent/report", timeout=10)
    assert r.status_code == 401


def test_before_the_reconstruction_the_days_are_pending_with_no_numbers(clocked: ClockedServer) -> None:
    ws = clocked.create_workspace()
    clocked.now = jst(2026, 3, 1, 10, 0)
    _send(ws, _buys())

    async def hold() -> None:  # the background task does not start: the report sees it queued
        pipe = await clocked.platform.pipeline(ws.name)
        await pipe.histories.wait()  # the look on opening is over
        pipe.histories.check = lambda: None  # type: ignore[method-assign]

    clocked.run(hold())
    clocked.define_segment(ws, "recent", RULE)
    _built(clocked, ws)
    body = _report(ws, days=5)
    assert body["history"]["status"] == "queued"
    assert [d["source"] for d in body["days"]] == ["pending"] * 5
    assert all(d["entries"] is None and d["exits"] is None for d in body["days"])
    assert [d["size"] for d in body["days"][:-1]] == [None] * 4 and body["days"][-1]["size"] == len(
        _members(_buys(), DEFINED)
    )
    out = tsunagu("segments", "report", "recent", "--days", "3", "--url", ws.url, "--token", ws.api_token).stdout
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("2026-")]
    assert rows[0] == ["2026-02-27", "…", "…", "…", "pending"]
    assert "queued for reconstruction" in out

    async def release() -> None:
        pipe = await clocked.platform.pipeline(ws.name)
        del pipe.histories.check  # the class's again
        await pipe.histories.wait()

    clocked.run(release())
    assert _report(ws, days=5)["history"]["status"] == "done"
