"""`/api/v1/tables`: Datahub tables — import a file or a database query, list versions,
read rows and rejects, roll back (docs/datahub.md).

An import's file is the request body, streamed to the workspace's directory (never held
in memory) and read there; the answer comes when the new version is written:

    curl -X POST "$URL/api/v1/tables/members/imports?mode=upsert" --url-query "key=会員番号" \\
         -H "Authorization: Bearer $TOKEN" -H "X-Filename: members.csv" --data-binary @members.csv
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import uuid
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ..core.datahub import COLUMN_TYPES, ImportOptions, ImportResult, Reject, format_for, table_name
from ..core.errors import FieldError, InvalidInput
from ..datahub import import_database, import_file
from .admin import Pipe, iso
from .errors import error_responses

if TYPE_CHECKING:
    from ..pipeline import WorkspacePipeline

__all__ = ["options_from", "receive_import", "rejects_csv", "router"]

router = APIRouter(tags=["datahub"])


class ColumnOut(BaseModel):
    name: str
    type: str = Field(description=" | ".join(COLUMN_TYPES))


class RejectOut(BaseModel):
    line: int = Field(description="where the row starts in the source (1-based; a spreadsheet's row number)")
    column: str | None = Field(description="the field that did not fit; null when the row's shape is wrong")
    reason: str
    text: str = Field(description="what was there (at most 500 characters)")


class HintOut(BaseModel):
    column: str
    type: str = Field(description="the type most values fit")
    fits: int = Field(description="values that fit it")
    values: int = Field(description="values in the column (empty ones not counted)")


class ImportOut(BaseModel):
    table: str
    version: int
    mode: str
    format: str
    source: str
    encoding: str | None = Field(description="what a text file was read as (utf-8, cp932, …)")
    rows_in_source: int
    rows_imported: int
    rows_rejected: int = Field(description="rows_imported + rows_rejected = rows_in_source, always")
    rows_total: int = Field(description="rows in the new version")
    columns: list[ColumnOut]
    rejects: list[RejectOut] = Field(description="the first 100, by line; all of them at …/rejects")
    hints: list[HintOut] = Field(description="columns read as text because a few values did not fit")


class TableOut(BaseModel):
    name: str
    version: int = Field(description="the current version")
    created_at: str | None
    updated_at: str | None
    columns: list[ColumnOut]
    rows: int
    versions: int


class VersionOut(BaseModel):
    version: int
    current: bool
    made_at: str | None
    mode: str = Field(description="append | upsert | replace | rollback")
    format: str | None
    source: str | None
    encoding: str | None
    key: list[str]
    columns: list[ColumnOut]
    rows_in_source: int | None
    rows_imported: int | None
    rows_rejected: int | None
    rows_total: int
    restored_from: int | None = Field(description="a rollback: the version it made current again")
    pruned: bool = Field(description="its rows are no longer kept (only the last 10 versions are)")


class TableDetailOut(TableOut):
    history: list[VersionOut] = Field(description="newest first")
    sample: list[list[Any]] = Field(description="the first rows of the current version")


class DatabaseIn(BaseModel):
    url: str = Field(
        description="postgresql://user:password@host:5432/db or mysql://…",
        examples=["postgresql://postgres@127.0.0.1:5432/test"],
    )
    table: str | None = Field(None, description="a table (schema.table) to read whole")
    query: str | None = Field(None, description="or a SELECT, run read-only")


class RollbackIn(BaseModel):
    version: int = Field(ge=1)


def _table_json(t: dict[str, Any]) -> dict[str, Any]:
    return {**t, "created_at": iso(t["created_at"]), "updated_at": iso(t["updated_at"])}


def _types(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    out: dict[str, Any] = {}
    for part in text.split(","):
        col, sep, typ = part.rpartition(":") if ":" in part else part.rpartition("=")
        if not sep or not col.strip():
            raise InvalidInput.for_field("types", f"{part!r}: write column:type (e.g. 会員番号:text)")
        out[col.strip()] = typ.strip()
    return out


def options_from(
    mode: str, key: str | None, encoding: str, delimiter: str | None, header: bool | None, types: str | None,
    fmt: str | None, sheet: str | None,
) -> ImportOptions:  # fmt: skip
    keys = tuple(k.strip() for k in key.split(",") if k.strip()) if key else ()
    if delimiter in ("\\t", "tab"):
        delimiter = "\t"
    return ImportOptions(mode, keys, encoding, delimiter, header, _types(types), fmt, sheet).checked()  # type: ignore[arg-type]


@router.get("/api/v1/tables", tags=["datahub"])
async def list_tables(pipe: Pipe) -> dict[str, list[TableOut]]:
    """The workspace's Datahub tables, each with its current version's columns and rows."""
    tables = await asyncio.to_thread(pipe.datahub.tables)
    return {"tables": [TableOut(**_table_json(t)) for t in tables]}


@router.get("/api/v1/tables/{name}", response_model=TableDetailOut, responses=error_responses(404))
async def get_table(pipe: Pipe, name: str) -> dict[str, Any]:
    """A table: columns, every version (newest first) and a sample of its rows."""
    hub = pipe.datahub
    t = await asyncio.to_thread(hub.table, name)
    history = await asyncio.to_thread(hub.versions, name)
    sample = await asyncio.to_thread(hub.rows, name, limit=20)
    return {
        **_table_json(t),
        "history": [{**v, "made_at": iso(v["made_at"])} for v in history],
        "sample": _jsonable(sample["rows"]),
    }


@router.get("/api/v1/tables/{name}/rows", responses=error_responses(404))
async def table_rows(
    pipe: Pipe,
    name: str,
    version: Annotated[int | None, Query(ge=1, description="default: the current one")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Rows of a version, in the order they were imported."""
    out = await asyncio.to_thread(pipe.datahub.rows, name, version=version, limit=limit, offset=offset)
    return {**out, "rows": _jsonable(out["rows"])}


@router.get("/api/v1/tables/{name}/rejects", response_model=None, responses=error_responses(404))
async def table_rejects(
    pipe: Pipe,
    name: str,
    version: Annotated[int | None, Query(ge=1, description="default: the current one")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    format: Annotated[str, Query(pattern="^(json|csv)$", description="csv: UTF-8 with a BOM, for Excel")] = "json",
) -> Any:
    """The rows an import could not read: line, column, reason and what was there."""
    rejects = await asyncio.to_thread(pipe.datahub.rejects, name, version, limit=limit, offset=offset)
    if format == "csv":
        return rejects_csv(name, rejects)
    return {"table": name, "rejects": [r.to_json() for r in rejects]}


def rejects_csv(name: str, rejects: list[Reject]) -> Response:
    """Rejects as a CSV download: UTF-8 with a BOM and CRLF, so Excel opens it as written."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["line", "column", "reason", "text"])
    for r in rejects:
        w.writerow([r.line, r.column or "", r.reason, r.text])
    return Response(
        ("\ufeff" + buf.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-rejects.csv"'},
    )  # fmt: skip


@router.post("/api/v1/tables/{name}/imports", response_model=ImportOut, status_code=201)
async def import_into(
    pipe: Pipe,
    request: Request,
    name: str,
    mode: Annotated[str, Query(description="append | upsert | replace")] = "append",
    key: Annotated[str | None, Query(description="upsert: the key column(s), comma-separated")] = None,
    encoding: Annotated[str, Query(description="auto | utf-8 | cp932 (Shift_JIS) | …")] = "auto",
    delimiter: Annotated[str | None, Query(description="CSV: , or \\t or ; or | (default: the file says)")] = None,
    header: Annotated[
        bool | None, Query(description="CSV/Excel: the first row names the columns (default: it says)")
    ] = None,
    types: Annotated[
        str | None, Query(description="column:type,… (text, integer, number, boolean, date, timestamp)")
    ] = None,
    format: Annotated[
        str | None, Query(description="csv | tsv | parquet | jsonl | excel (default: from the file name)")
    ] = None,
    filename: Annotated[str | None, Query(description="the file's name (or the X-Filename header)")] = None,
    sheet: Annotated[str | None, Query(description="Excel: the sheet (default: the first)")] = None,
) -> dict[str, Any]:
    """Import the request body (a file) — or, with a JSON body `{url, table | query}`, a
    database table or query — as a new version of the table."""
    options = options_from(mode, key, encoding, delimiter, header, types, format, sheet)
    hub = pipe.datahub
    now = request.app.state.platform.clock()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = DatabaseIn(**json.loads(await request.body()))
        except (ValueError, TypeError) as e:
            raise InvalidInput.for_field("body", f"must be {{url, table | query}}: {e}") from None
        if (body.table is None) == (body.query is None):
            raise InvalidInput.for_fields([FieldError("table", "give a table or a query (one of them)")])
        result = await asyncio.to_thread(
            import_database, hub, name, body.url, options, now, source_table=body.table, query=body.query
        )
        return result.to_json()
    filename = filename or request.headers.get("x-filename")
    result = await receive_import(pipe, request, name, options, now, filename)
    return result.to_json()


@router.post("/api/v1/tables/{name}/rollback", response_model=TableOut, responses=error_responses(404, 409))
async def rollback(pipe: Pipe, name: str, body: RollbackIn, request: Request) -> dict[str, Any]:
    """Make an earlier version current again, exactly as it was (recorded as a new version)."""
    now = request.app.state.platform.clock()
    t = await asyncio.to_thread(pipe.datahub.rollback, name, body.version, now)
    return _table_json(t)


@router.delete("/api/v1/tables/{name}", responses=error_responses(404))
async def drop_table(pipe: Pipe, name: str) -> dict[str, Any]:
    """Delete a table with every version and reject."""
    await asyncio.to_thread(pipe.datahub.drop, name)
    return {"deleted": name}


async def receive_import(
    pipe: WorkspacePipeline, request: Request, name: str, options: ImportOptions, now: int, filename: str | None
) -> ImportResult:
    """Stream the request's body to the workspace's directory and import it (the API and
    the admin UI's upload both come here)."""
    hub = pipe.datahub
    if not filename:
        if options.format is None:
            raise InvalidInput.for_field("filename", "name the file (?filename= or X-Filename) or give format")
        filename = f"upload.{options.format}"
    table_name(name)
    format_for(filename, options.format)  # before reading a byte of it
    spool = pipe.directory / "imports"
    spool.mkdir(exist_ok=True)
    path = spool / f"{uuid.uuid4().hex}-{_safe(filename)}"
    try:
        size = 0
        with path.open("wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                f.write(chunk)  # small chunks, into the page cache
        if size == 0:
            raise InvalidInput.for_field("body", "is empty: send the file as the request body")
        return await asyncio.to_thread(import_file, hub, name, path, options, now, filename=filename, workdir=spool)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def _safe(filename: str) -> str:
    keep = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename.rsplit("/", 1)[-1])
    return keep[-100:] or "upload"


def _jsonable(rows: list[list[Any]]) -> list[list[Any]]:
    out = []
    for r in rows:
        out.append([v.isoformat() if hasattr(v, "isoformat") else v for v in r])
    return out
