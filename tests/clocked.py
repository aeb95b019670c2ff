"""A real tsunagu server on 127.0.0.1 whose clock the test sets.

Segment entries and exits are stamped when the server receives the event that caused
them, so reports over several days need a server that lives through several days: this
one runs the platform in-process (uvicorn on a thread, real HTTP) with an injected clock.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import uvicorn

from tsunagu.app import Platform
from tsunagu.storage.control import ControlStore

from .conftest import Workspace, free_port

JST = ZoneInfo("Asia/Tokyo")
GOLD = {"trait": "rank", "op": "eq", "value": "gold"}
BUYERS = {"did": "buy"}
NAME = '佐藤, "美咲"\n二行目'  # a comma, quotes and a newline: the CSV must quote all three


def jst(*args: int) -> int:
    """Epoch milliseconds of a wall-clock time in Tokyo: jst(2026, 3, 2, 10, 0)."""
    return int(datetime(*args, tzinfo=JST).timestamp() * 1000)  # type: ignore[misc]


class ClockedServer:
    def __init__(self, data_dir: Path, now: int) -> None:
        self.data_dir = data_dir
        self.now = now
        self.platform = Platform(data_dir, clock=lambda: self.now, flush_interval=0.02)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.platform.asgi(), host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._server.serve(),))

    def start(self) -> ClockedServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the clocked server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the server's event loop (where the pipelines live)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(60)

    def create_workspace(self) -> Workspace:
        store = ControlStore(self.data_dir / "control.sqlite")
        try:
            creds = store.create_workspace("ws-" + uuid.uuid4().hex[:12])
        finally:
            store.close()
        return Workspace(creds.workspace, creds.write_key, creds.api_token, self.url)

    def create_user(self, ws: Workspace, email: str, password: str) -> None:
        store = ControlStore(self.data_dir / "control.sqlite")
        try:
            store.create_user(ws.name, email, password)
        finally:
            store.close()

    def define_segment(self, ws: Workspace, name: str, rule: dict[str, Any]) -> dict[str, Any]:
        async def define() -> dict[str, Any]:
            pipe = await self.platform.pipeline(ws.name)
            return await pipe.define("segment", name, {"rule": rule}, self.now)

        return self.run(define())


def identify(ws: Workspace, uid: str, **traits: Any) -> None:
    assert ws.ingest("/v1/identify", {"userId": uid, "traits": traits}).status_code == 200


def buy(ws: Workspace, revenue: int, **ids: str) -> None:
    body = {"event": "buy", "properties": {"revenue": revenue}, "context": {"channel": "store"}, **ids}
    assert ws.ingest("/v1/track", body).status_code == 200


def tell_story(clocked: ClockedServer) -> Workspace:
    """Five days in Tokyo (2026-03-01 to 03-05), told through the clocked server.

    gold (rank = gold):  03-02 U1, U2 in · 03-03 08:30 (03-02 23:30 UTC) U3 in, U1 out
                         · 03-05 U1 back, U4 in, U2 out → now U1, U3, U4
    buyers (did buy):    03-02 an anonymous visitor buys · 03-03 U6 buys
                         · 03-04 the visitor logs in as U6 (one person, two entries)
                         · 03-05 U1, U5 buy → now U1, U6, U5 (and U3 from 03-03)
    """
    ws = clocked.create_workspace()
    clocked.now = jst(2026, 3, 1, 9, 0)
    clocked.define_segment(ws, "gold", GOLD)
    clocked.define_segment(ws, "buyers", BUYERS)
    clocked.now = jst(2026, 3, 2, 10, 0)
    identify(ws, "U1", rank="gold", name=NAME)
    identify(ws, "U2", rank="gold", name="田中")
    identify(ws, "U3", rank="silver")
    buy(ws, 5000, anonymousId="anon-1")
    clocked.now = jst(2026, 3, 3, 8, 30)  # still 03-02 in UTC: the report's days are Tokyo's
    identify(ws, "U3", rank="gold")
    identify(ws, "U1", rank="silver")
    buy(ws, 3000, userId="U3")
    buy(ws, 7000, userId="U6")
    clocked.now = jst(2026, 3, 4, 19, 0)
    identify(ws, "U6", email="u6@example.jp")
    assert ws.ingest("/v1/identify", {"userId": "U6", "anonymousId": "anon-1"}).status_code == 200
    clocked.now = jst(2026, 3, 5, 12, 0)
    identify(ws, "U1", rank="gold", email="u1@example.jp")
    identify(ws, "U4", rank="gold")
    identify(ws, "U2", rank="bronze")
    buy(ws, 12000, userId="U1")
    buy(ws, 800, userId="U5")
    clocked.now = jst(2026, 3, 5, 18, 0)
    return ws


def _track(uid: str, event: str, when: str, channel: str, **props: Any) -> dict[str, Any]:
    return {"type": "track", "userId": uid, "event": event, "timestamp": when, "properties": props,
            "context": {"channel": channel}}  # fmt: skip


def tell_overview_story(clocked: ClockedServer) -> Workspace:
    """A week of a shop in Tokyo, for the overview (now: 2026-11-20 12:00 in Tokyo).

    U1 buys on the web at 23:30 on the 19th and in store at 00:30 on the 20th (one UTC
    day); U2 views a coat on the web and buys two in store; U3 buys in the app; U4 only
    looks. Revenue: web 1,000 (19th), store 2,000 (20th) and 29,800 (18th), app 4,500 (17th).
    """
    ws = clocked.create_workspace()
    clocked.now = jst(2026, 11, 20, 12, 0)
    coat = {"sku": "YH-OT001", "product_name": "ウールコート", "category": "アウター", "price": 14900}
    knit = {"sku": "YH-KN002", "product_name": "ケーブル編み カーディガン", "category": "ニット", "price": 2000}
    batch = [
        {"type": "identify", "userId": "U1", "timestamp": "2026-11-19T20:00:00+09:00", "traits": {"name": "山田 花子"}},
        _track("U1", "view", "2026-11-19T23:10:00+09:00", "web", **knit),
        _track("U1", "buy", "2026-11-19T23:30:00+09:00", "web", revenue=1000, items=[{**knit, "quantity": 1}]),
        _track("U1", "buy", "2026-11-20T00:30:00+09:00", "store", revenue=2000, items=[{**knit, "quantity": 1}]),
        _track("U2", "view", "2026-11-16T12:00:00+09:00", "web", **coat),
        _track("U2", "buy", "2026-11-18T15:00:00+09:00", "store", revenue=29800, items=[{**coat, "quantity": 2}]),
        _track("U3", "buy", "2026-11-17T21:00:00+09:00", "app", revenue=4500),
        _track("U4", "view", "2026-11-19T08:00:00+09:00", "app", **coat),
        _track("U4", "view", "2026-11-19T08:01:00+09:00", "web", **knit),
    ]
    assert ws.ingest("/v1/batch", {"batch": batch}).status_code == 200
    return ws
