"""`tsunagu import FILE --table NAME` and `tsunagu tables …`: Datahub tables over the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from ._common import DEFAULT_DATA_DIR, Api, DataDir, Token, Url, Workspace, console, err_console, fail

app = typer.Typer(help="Datahub tables: list, show, rejects, roll back, drop.", no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", help="print the API's JSON")]
Name = Annotated[str, typer.Argument(help="the table's name")]


def _print_result(r: dict[str, Any]) -> None:
    colour = "green" if not r["rows_rejected"] else "yellow"
    console.print(
        f"[bold {colour}]{r['table']}[/] version {r['version']} ({r['mode']}): "
        f"{r['rows_imported']:,} of {r['rows_in_source']:,} rows imported, {r['rows_rejected']:,} rejected; "
        f"{r['rows_total']:,} rows in the table" + (f"  [dim]read as {r['encoding']}[/]" if r.get("encoding") else "")
    )
    console.print("  columns: " + ", ".join(f"{c['name']} ({c['type']})" for c in r["columns"]))
    for h in r.get("hints", []):
        console.print(
            f"  [yellow]hint[/]: {h['column']} was read as text: {h['fits']:,} of {h['values']:,} values are "
            f"{h['type']}; --type {h['column']}={h['type']} imports it as {h['type']} and rejects the others"
        )
    if r["rejects"]:
        t = Table("line", "column", "reason", "text", box=None, pad_edge=False)
        for rej in r["rejects"][:20]:
            t.add_row(str(rej["line"]), rej["column"] or "-", rej["reason"], rej["text"][:60])
        console.print(t)
        if r["rows_rejected"] > 20:
            console.print(
                f"  … {r['rows_rejected'] - 20:,} more: tsunagu tables rejects {r['table']} --csv rejects.csv"
            )


def import_(
    file: Annotated[
        Path, typer.Argument(help="CSV/TSV, Parquet, JSON Lines or Excel file", exists=True, dir_okay=False)
    ],
    table: Annotated[str, typer.Option("--table", "-t", help="the table to import into")],
    mode: Annotated[str, typer.Option(help="append | upsert | replace")] = "append",
    key: Annotated[str | None, typer.Option(help="upsert: the key column(s), comma-separated")] = None,
    encoding: Annotated[str, typer.Option(help="auto | utf-8 | cp932 (Shift_JIS) | …")] = "auto",
    delimiter: Annotated[str | None, typer.Option(help="CSV: , or tab or ; or | (default: the file says)")] = None,
    header: Annotated[bool | None, typer.Option("--header/--no-header", help="the first row names the columns")] = None,
    type_: Annotated[
        list[str] | None, typer.Option("--type", help="COLUMN=TYPE (text, integer, number, boolean, date, timestamp)")
    ] = None,
    format_: Annotated[str | None, typer.Option("--format", help="csv | tsv | parquet | jsonl | excel")] = None,
    sheet: Annotated[str | None, typer.Option(help="Excel: the sheet")] = None,
    as_json: AsJson = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    url: Url = None,
    token: Token = None,
    workspace: Workspace = "demo",
) -> None:
    """Import a file into a Datahub table (a new version; rejects are kept, never lost)."""
    api = Api(url, token, data_dir, workspace)
    params: dict[str, Any] = {"mode": mode, "encoding": encoding, "filename": file.name}
    for k, v in (("key", key), ("delimiter", delimiter), ("format", format_), ("sheet", sheet)):
        if v is not None:
            params[k] = v
    if header is not None:
        params["header"] = str(header).lower()
    if type_:
        params["types"] = ",".join(t.replace("=", ":", 1) if ":" not in t else t for t in type_)
    size = file.stat().st_size

    def body(progress: Progress | None) -> Iterator[bytes]:
        task = progress.add_task("upload", total=size) if progress else None
        with file.open("rb") as f:
            while chunk := f.read(1 << 20):
                if progress is not None and task is not None:
                    progress.update(task, advance=len(chunk))
                yield chunk

    with Progress(
        TextColumn(f"[bold]{file.name}[/]"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        console=err_console, transient=True, disable=as_json or size < 4 << 20,
    ) as progress:  # fmt: skip
        try:
            resp = api._client.post(
                f"/api/v1/tables/{table}/imports", params=params, content=body(progress),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                timeout=httpx.Timeout(60, read=3600),
            )  # fmt: skip
        except httpx.ConnectError:
            fail(f"cannot reach tsunagu at {api.url}: is `tsunagu serve` running? (--url to point elsewhere)")
            raise
    try:
        result = resp.json()
    except ValueError:
        fail(resp.text)
        raise
    if resp.status_code >= 400:
        if as_json:
            print(json.dumps(result, ensure_ascii=False))
            raise typer.Exit(1)
        fail(result.get("error", {}).get("message", str(result)))
    if as_json:
        keep = ("table", "version", "rows_imported", "rows_rejected", "rejects")
        print(json.dumps({k: result[k] for k in keep} | result, ensure_ascii=False))
        return
    _print_result(result)


@app.command("list")
def list_(
    as_json: AsJson = False, data_dir: DataDir = DEFAULT_DATA_DIR, url: Url = None, token: Token = None,
    workspace: Workspace = "demo",
) -> None:  # fmt: skip
    """The workspace's tables."""
    api = Api(url, token, data_dir, workspace)
    tables = api.call("GET", "/api/v1/tables")["tables"]
    if as_json:
        print(json.dumps(tables, ensure_ascii=False))
        return
    if not tables:
        console.print("no Datahub tables yet: tsunagu import FILE --table NAME")
        return
    t = Table("table", "version", "rows", "columns", "updated")
    for row in tables:
        t.add_row(
            row["name"], str(row["version"]), f"{row['rows']:,}", str(len(row["columns"])), api.when(row["updated_at"])
        )
    console.print(t)


@app.command()
def show(
    name: Name, as_json: AsJson = False, data_dir: DataDir = DEFAULT_DATA_DIR, url: Url = None,
    token: Token = None, workspace: Workspace = "demo",
) -> None:  # fmt: skip
    """A table's columns, versions and first rows."""
    api = Api(url, token, data_dir, workspace)
    t = api.call("GET", f"/api/v1/tables/{name}")
    if as_json:
        print(json.dumps(t, ensure_ascii=False))
        return
    console.print(f"[bold]{t['name']}[/]: {t['rows']:,} rows, version {t['version']}")
    console.print("  columns: " + ", ".join(f"{c['name']} ({c['type']})" for c in t["columns"]))
    h = Table("version", "when", "mode", "source", "imported", "rejected", "rows", box=None)
    for v in t["history"]:
        mark = " ← current" if v["current"] else (" (pruned)" if v["pruned"] else "")
        what = f"rollback to {v['restored_from']}" if v["restored_from"] else (v["source"] or "")
        h.add_row(f"{v['version']}{mark}", api.when(v["made_at"]), v["mode"], what,
                  _n(v["rows_imported"]), _n(v["rows_rejected"]), _n(v["rows_total"]))  # fmt: skip
    console.print(h)
    s = Table(*[c["name"] for c in t["columns"]], title="first rows")
    for row in t["sample"][:10]:
        s.add_row(*["" if v is None else str(v) for v in row])
    console.print(s)


@app.command()
def rejects(
    name: Name,
    version: Annotated[int | None, typer.Option(help="default: the current version")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="write them all to this CSV file (UTF-8, BOM)")] = None,
    as_json: AsJson = False, data_dir: DataDir = DEFAULT_DATA_DIR, url: Url = None, token: Token = None,
    workspace: Workspace = "demo",
) -> None:  # fmt: skip
    """The rows an import could not read, with line, column and reason."""
    api = Api(url, token, data_dir, workspace)
    params: dict[str, Any] = {"limit": 100_000}
    if version:
        params["version"] = version
    if csv_out is not None:
        size = api.download(f"/api/v1/tables/{name}/rejects", csv_out, params={**params, "format": "csv"})
        console.print(f"wrote {csv_out} ({size:,} bytes)")
        return
    out = api.call("GET", f"/api/v1/tables/{name}/rejects", params=params)["rejects"]
    if as_json:
        print(json.dumps(out, ensure_ascii=False))
        return
    t = Table("line", "column", "reason", "text", box=None)
    for r in out:
        t.add_row(str(r["line"]), r["column"] or "-", r["reason"], r["text"][:80])
    console.print(t if out else "no rejects")


@app.command()
def rollback(
    name: Name,
    version: Annotated[int, typer.Option(help="the version to make current again")],
    data_dir: DataDir = DEFAULT_DATA_DIR, url: Url = None, token: Token = None, workspace: Workspace = "demo",
) -> None:  # fmt: skip
    """Make an earlier version current again, exactly as it was."""
    api = Api(url, token, data_dir, workspace)
    t = api.call("POST", f"/api/v1/tables/{name}/rollback", json={"version": version})
    console.print(
        f"[bold]{name}[/] is back to version {version}'s rows (recorded as version {t['version']}, {t['rows']:,} rows)"
    )


@app.command()
def drop(
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR, url: Url = None, token: Token = None, workspace: Workspace = "demo",
) -> None:  # fmt: skip
    """Delete a table with all its versions."""
    if not yes:
        typer.confirm(f"delete {name} with every version?", abort=True)
    api = Api(url, token, data_dir, workspace)
    api.call("DELETE", f"/api/v1/tables/{name}")
    console.print(f"deleted {name}")


def _n(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"
