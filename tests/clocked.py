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
