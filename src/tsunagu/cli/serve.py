"""`tsunagu serve`: serve a data directory over HTTP."""

from __future__ import annotations

import gc
import json
import logging
import os
from pathlib import Path

import uvicorn

from ..app import Platform
from ..core.errors import TsunaguError
from ._common import console, fail


def run_server(
    data_dir: Path, host: str, port: int, *, banner: str | None = None, analytics_interval: float = 0.1
) -> None:
    # The hot path allocates many short-lived containers and few cycles; collecting the
    # young generation every 700 allocations costs more than it frees.
    gc.set_threshold(50_000, 50, 100)
    platform = Platform(data_dir, flush_interval=analytics_interval)
    try:
        platform.lock()
    except TsunaguError as exc:
        fail(exc.message)
    url = f"http://{host}:{port}"
    (data_dir / "server.json").write_text(json.dumps({"url": url, "pid": os.getpid()}))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console.print(
        banner or f"tsunagu serving [bold]{data_dir}[/] at [bold cyan]{url}[/]  (OpenAPI: {url}/openapi.json)"
    )
    uvicorn.run(
        platform.asgi(),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        backlog=2048,
        timeout_graceful_shutdown=10,
    )
