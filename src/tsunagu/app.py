"""Wiring: the only module that picks adapters and connects them to the core.

`Platform` serves one data directory:

    DATA_DIR/
      control.sqlite              workspaces, keys (hashed), users
      workspaces/NAME/log.sqlite        the event log (source of truth)
      workspaces/NAME/state.sqlite      person-state checkpoints
      workspaces/NAME/state-keys/       the Bloom filter of its keys (derived: rebuilt when missing)
      workspaces/NAME/analytics.duckdb  events and people for SQL
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .core.errors import InvalidInput, NotFound, TsunaguError
from .core.ports import Backends
from .pipeline import DEFAULT_PERSON_CACHE, WorkspacePipeline, new_id_factory
from .storage.control import ControlStore
from .storage.embedded import EmbeddedBackends

__all__ = ["EMBEDDED", "DataDirLocked", "Platform", "open_control", "wall_clock_ms"]

#: the backends a platform uses unless told: every store a file in the workspace's directory
EMBEDDED: Backends = EmbeddedBackends()

log = logging.getLogger("tsunagu")


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def _person_cache_from_env() -> int:
    raw = os.environ.get("TSUNAGU_PERSON_CACHE", "").strip().replace("_", "")
    if not raw:
        return DEFAULT_PERSON_CACHE
    if not raw.isdigit():
        raise InvalidInput.for_field(
            "TSUNAGU_PERSON_CACHE", f"must be a whole number of persons (0: all in memory), not {raw!r}"
        )
    return int(raw)


def open_control(data_dir: Path | str) -> ControlStore:
    """A data directory's control database: workspaces, keys, users, sessions. A running
    server reads it on every request, so the CLI changes it without stopping the server
    (and without the data directory's lock, which `Platform.lock` takes)."""
    return ControlStore(Path(data_dir) / "control.sqlite")


class DataDirLocked(TsunaguError):
    status = 409
    code = "data_dir_locked"


class Platform:
    def __init__(
        self,
        data_dir: Path | str,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        flush_interval: float = 0.1,
        checkpoint_interval: float = 30.0,
        person_cache: int | None = None,
        backends: Backends | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        #: what opens each workspace's stores: the only place an adapter is picked
        self.backends = backends or EMBEDDED
        #: persons each workspace keeps in memory (docs/storage.md); TSUNAGU_PERSON_CACHE
        self.person_cache = person_cache if person_cache is not None else _person_cache_from_env()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.new_id = new_id_factory()
        self.control = open_control(self.data_dir)
        self.flush_interval = flush_interval
        self.checkpoint_interval = checkpoint_interval
        self._pipelines: dict[str, WorkspacePipeline] = {}
        self._opening: dict[str, asyncio.Task[WorkspacePipeline]] = {}
        self._write_keys: dict[str, str] = {}
        self._tokens: dict[str, str] = {}
        self._lock_fd: int | None = None
        self.reopens = 0  # workspaces reopened after a storage error, since start

    # -- one owner per data directory ----------------------------------------------------

    def lock(self) -> None:
        """Take the data directory: the engine owns person state, so one process only."""
        fd = os.open(self.data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirLocked(
                f"{self.data_dir} is in use by another tsunagu process (a running `tsunagu serve`?); "
                "stop it first, or talk to it over HTTP"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- workspaces --------------------------------------------------------------------

    def workspace_dir(self, name: str) -> Path:
        return self.data_dir / "workspaces" / name

    async def pipeline(self, name: str) -> WorkspacePipeline:
        pipe = self._pipelines.get(name)
        if pipe is not None and not pipe.failed:
            return pipe
        # One task opens (or closes and reopens) a workspace; every caller awaits it, so
        # the old stores are closed before the new ones open the same files.
        task = self._opening.get(name)
        if task is None:
            old = self._pipelines.pop(name, None)
            task = self._opening[name] = asyncio.ensure_future(self._reopen(name, old))

            def forget(t: asyncio.Task[WorkspacePipeline], name: str = name) -> None:
                if self._opening.get(name) is t:
                    del self._opening[name]
                if not t.cancelled():
                    t.exception()  # retrieved: a failed open is the callers' error, not the loop's

            task.add_done_callback(forget)
        return await asyncio.shield(task)

    async def _reopen(self, name: str, old: WorkspacePipeline | None) -> WorkspacePipeline:
        if old is not None:  # a storage error: start over from the checkpoint and the log
            log.warning("%s: reopening after a storage error", name)
            self.reopens += 1
            await old.close()
        return await self._open(name)

    async def _open(self, name: str) -> WorkspacePipeline:
        info = self.control.workspace(name)
        if info is None:
            raise NotFound.for_field("workspace", f"no workspace {name!r}")
        pipe = WorkspacePipeline(
            name,
            self.workspace_dir(name),
            info.config,
            self.backends,
            flush_interval=self.flush_interval,
            checkpoint_interval=self.checkpoint_interval,
            clock=self.clock,
            person_cache=self.person_cache,
        )
        await pipe.open(self.clock())
        self._pipelines[name] = pipe
        return pipe

    async def open_all(self) -> None:
        for info in self.control.workspaces():
            await self.pipeline(info.name)

    async def close(self) -> None:
        for task in list(self._opening.values()):
            with contextlib.suppress(Exception):
                await task
        for pipe in list(self._pipelines.values()):
            await pipe.close()
        self._pipelines.clear()

    # -- credentials (cached: ingest checks a key on every request) ----------------------

    def workspace_for_write_key(self, key: str) -> str | None:
        ws = self._write_keys.get(key)
        if ws is None:
            ws = self.control.authenticate(key, "write")
            if ws is not None:
                self._write_keys[key] = ws
        return ws

    def workspace_for_token(self, token: str) -> str | None:
        ws = self._tokens.get(token)
        if ws is None:
            ws = self.control.authenticate(token, "admin")
            if ws is not None:
                self._tokens[token] = ws
        return ws

    # -- the ASGI application ------------------------------------------------------------

    def asgi(self) -> Any:
        from .api.admin import build_admin_app
        from .api.ingest import INGEST_PATHS, handle_ingest
        from .api.web import handle_browser_sdk, handle_settings, handle_tag, is_browser_sdk_path, is_settings_path

        admin = build_admin_app(self)
        from starlette.responses import RedirectResponse

        from .admin.headers import SecurityHeaders
        from .admin.views import build_ui

        admin.mount("/ui", build_ui(self))
        # the redirects into the UI (`/`, `/ui`) answer outside it: give them its headers
        redirects = SecurityHeaders(admin)

        @admin.get("/", include_in_schema=False)
        async def _root() -> RedirectResponse:
            return RedirectResponse("/ui/")

        platform = self

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] in INGEST_PATHS:
                await handle_ingest(platform, scope, receive, send)
            elif scope["type"] == "http" and scope["path"] == "/tag.js":
                await handle_tag(scope, receive, send)
            elif scope["type"] == "http" and is_settings_path(scope["path"]):
                await handle_settings(platform, scope, receive, send)
            elif scope["type"] == "http" and is_browser_sdk_path(scope["path"]):
                await handle_browser_sdk(scope, receive, send)
            elif scope["type"] == "http" and scope["path"] in ("/", "/ui"):
                await redirects(scope, receive, send)
            elif scope["type"] == "lifespan":
                await _lifespan(platform, receive, send)
            else:
                await admin(scope, receive, send)

        return app


GC_FREEZE_INTERVAL = 10.0


async def _freeze_every(seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        gc.freeze()


async def _lifespan(platform: Platform, receive: Any, send: Any) -> None:
    freezer: asyncio.Task[None] | None = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await platform.open_all()
            except Exception as exc:
                log.exception("startup failed")
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            # Person state is millions of long-lived containers with no cycles: keep the
            # cyclic GC from walking them over and over (a collection of the old
            # generation walks every one, and shows up as p99 latency).
            gc.collect()
            gc.freeze()
            # Every event adds small buckets (user data) that live as long as the person:
            # freeze them as they age too, and collect the young generation less often.
            gc.set_threshold(20_000, 20, 20)
            freezer = asyncio.create_task(_freeze_every(GC_FREEZE_INTERVAL))
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if freezer is not None:
                freezer.cancel()
            try:
                await platform.close()
            except Exception:  # the log holds everything acknowledged: the next start replays it
                log.exception("shutdown: closing the workspaces failed")
            await send({"type": "lifespan.shutdown.complete"})
            return
