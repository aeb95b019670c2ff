"""`tsunagu serve` with three defects injected into the admin app, for tests/api/test_server_errors.py.

    python tests/api/faulty_server.py DATA_DIR PORT

The admin app is built as in production, then given routes that fail the three ways a
defect can: before the response (`/api/v1/faults/before`), after it was sent whole
(`/after`, a background task) and while a streamed body is under way (`/midway`). Only
this process has them: production code has no such route.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import BackgroundTasks
from fastapi.responses import StreamingResponse

import tsunagu.api.admin as admin
from tsunagu.cli.serve import run_server

_build = admin.build_admin_app


class InjectedDefect(Exception):
    pass


def _fail(where: str) -> None:
    raise InjectedDefect(f"injected defect {where}")


def build_with_defects(platform: Any) -> Any:
    app = _build(platform)

    @app.get("/api/v1/faults/before")
    async def before() -> dict[str, str]:
        _fail("before")
        return {}

    @app.get("/api/v1/faults/after")
    async def after(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(_fail, "after")
        return {"sent": "whole"}

    @app.get("/api/v1/faults/midway")
    async def midway() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"person_id\r\n"
            _fail("midway")

        return StreamingResponse(body(), media_type="text/csv")

    app.openapi_schema = None  # rebuilt with the routes added
    return app


if __name__ == "__main__":
    admin.build_admin_app = build_with_defects
    run_server(Path(sys.argv[1]), "127.0.0.1", int(sys.argv[2]))
