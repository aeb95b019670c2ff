"""The Datahub pages: tables with an upload, and a table's columns, versions and rejects.

The upload is a script's `POST /ui/datahub/import` of the file as the body (a progress
bar while it goes), answered by the same `api.datahub.receive_import` the admin API
runs, so the page and `POST /api/v1/tables/{name}/imports` never differ.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..api.datahub import options_from, receive_import, rejects_csv
from ..core.datahub import ENCODINGS, MODES
from ..core.errors import Forbidden, NotFound
from .json_endpoints import json_route

if TYPE_CHECKING:
    from ..app import Platform
    from ..pipeline import WorkspacePipeline
    from ..storage.control import Session

__all__ = ["datahub_routes"]


def datahub_routes(
    platform: Platform,
    render: Callable[..., Response],
    pipeline_for: Callable[[Request], Awaitable[tuple[Session, WorkspacePipeline]]],
    guarded: Callable[[Any], Any],
    fmt: Callable[[int | None, ZoneInfo], str],
) -> list[Route]:
    async def list_page(request: Request) -> Response:
        s, pipe = await pipeline_for(request)
        tables = await asyncio.to_thread(pipe.datahub.tables)
        zone = ZoneInfo(pipe.config.timezone)
        return render(
            request, "datahub.html", s=s, tables=tables, modes=MODES, encodings=ENCODINGS,
            fmt=lambda ms: fmt(ms, zone), zone=pipe.config.timezone,
        )  # fmt: skip

    async def table_page(request: Request) -> Response:
        s, pipe = await pipeline_for(request)
        name = request.path_params["name"]
        hub = pipe.datahub
        try:
            t = await asyncio.to_thread(hub.table, name)
        except NotFound:
            return render(request, "not_found.html", status=404, s=s)
        history = await asyncio.to_thread(hub.versions, name)
        sample = await asyncio.to_thread(hub.rows, name, limit=50)
        rejects = await asyncio.to_thread(hub.rejects, name, None, limit=200)
        zone = ZoneInfo(pipe.config.timezone)
        return render(
            request, "datahub_table.html", s=s, tb=t, history=history, sample=sample, rejects=rejects,
            fmt=lambda ms: fmt(ms, zone), zone=pipe.config.timezone, rolled=request.query_params.get("rolled"),
        )  # fmt: skip

    async def upload(request: Request) -> Response:
        s, pipe = await pipeline_for(request)
        if request.headers.get("x-csrf-token") != s.csrf:
            raise Forbidden.for_field("x-csrf-token", "missing or wrong: reload the page")
        q = request.query_params
        options = options_from(
            q.get("mode", "append"), q.get("key") or None, q.get("encoding", "auto"), q.get("delimiter") or None,
            None if q.get("header") in (None, "", "auto") else q.get("header") == "true", q.get("types") or None,
            q.get("format") or None, q.get("sheet") or None,
        )  # fmt: skip
        result = await receive_import(pipe, request, q.get("table", ""), options, platform.clock(), q.get("filename"))
        return JSONResponse(result.to_json())

    async def rollback(request: Request) -> Response:
        s, pipe = await pipeline_for(request)
        form = await request.form()
        if form.get("csrf") != s.csrf:
            return Response("CSRF token missing or wrong", status_code=403)
        name = request.path_params["name"]
        version = str(form.get("version", ""))
        if not version.isdigit():
            return Response("version: must be a number", status_code=400)
        await asyncio.to_thread(pipe.datahub.rollback, name, int(version), platform.clock())
        return RedirectResponse(f"/ui/datahub/{name}?rolled={version}", status_code=303)

    async def rejects_page(request: Request) -> Response:
        _, pipe = await pipeline_for(request)
        name = request.path_params["name"]
        rejects = await asyncio.to_thread(pipe.datahub.rejects, name, None, limit=10_000_000)
        return rejects_csv(name, rejects)

    return [
        Route("/datahub", guarded(list_page)),
        Route("/datahub/{name}/rejects.csv", guarded(rejects_page)),
        json_route("/datahub/import", upload),
        Route("/datahub/{name}", guarded(table_page)),
        Route("/datahub/{name}/rollback", guarded(rollback), methods=["POST"]),
    ]
