"""`tsunagu segments ...`: check a segment rule and show the SQL it runs as."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
import yaml
from rich.table import Table

from ..core.errors import InvalidInput
from ..core.segments import day_of, parse_rule
from ..sql.segments import DIALECTS, compile_segment
from ._common import DEFAULT_DATA_DIR, Api, DataDir, Token, Url, Workspace, console, fail

app = typer.Typer(help="Segments: list them, show one, validate a rule and see its SQL.", no_args_is_help=True)


@app.command("sql")
def sql(
    rule_file: Annotated[Path, typer.Argument(help="a JSON file holding the rule (or - for standard input)")],
    dialect: Annotated[str, typer.Option(help="one of " + ", ".join(DIALECTS))] = "duckdb",
    timezone: Annotated[str, typer.Option(help="the workspace's time zone")] = "Asia/Tokyo",
    today: Annotated[str | None, typer.Option(help="the day to evaluate on (YYYY-MM-DD); default today")] = None,
) -> None:
    """Validate a rule and print the SQL that finds its members."""
    text = typer.get_text_stream("stdin").read() if str(rule_file) == "-" else rule_file.read_text()
    try:
        rule = parse_rule(json.loads(text))
    except json.JSONDecodeError as exc:
        fail(f"{rule_file}: not JSON: {exc}")
        return
    except InvalidInput as exc:
        fail(exc.message)
        return
    if dialect not in DIALECTS:
        fail(f"unknown dialect {dialect!r}: use one of {', '.join(DIALECTS)}")
    zone = ZoneInfo(timezone)
    day = datetime.fromisoformat(today).replace(tzinfo=zone) if today else datetime.now(zone)
    console.print(compile_segment(rule, today=day_of(int(day.timestamp() * 1000), zone), timezone=timezone,
                                  dialect=dialect, pretty=True), highlight=False, soft_wrap=True)  # fmt: skip


def _status(d: dict[str, Any]) -> str:
    if d["status"] == "ready":
        return "[green]ready[/]"
    done = sum(b["persons_done"] for b in d.get("backfill") or [])
    total = sum(b["persons_total"] or 0 for b in d.get("backfill") or [])
    return f"[yellow]building[/] {done:,}/{total:,}" if total else "[yellow]building[/]"


@app.command("list")
def list_(
    data_dir: DataDir = DEFAULT_DATA_DIR, workspace: Workspace = "demo", url: Url = None, token: Token = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
) -> None:  # fmt: skip
    """The workspace's segments: members now, status, description."""
    body = Api(url, token, data_dir, workspace).call("GET", "/api/v1/segments")
    if as_json:
        console.print_json(data=body)
        return
    table = Table("segment", "members", "status", "description", box=None, header_style="bold")
    for d in body["segments"]:
        table.add_row(d["name"], f"{d['members']:,}", _status(d), d["body"].get("description", ""))
    console.print(table if body["segments"] else "no segments yet: `tsunagu apply FILE` (docs/segments.md)")


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="the segment's name")],
    data_dir: DataDir = DEFAULT_DATA_DIR, workspace: Workspace = "demo", url: Url = None, token: Token = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
) -> None:  # fmt: skip
    """One segment: its rule, members now, status and version."""
    d = Api(url, token, data_dir, workspace).call("GET", f"/api/v1/segments/{name}")
    if as_json:
        console.print_json(data=d)
        return
    console.print(f"[bold]{d['name']}[/]  {d['members']:,} members, {_status(d)}, version {d['version']}")
    if d["body"].get("description"):
        console.print(f"  {d['body']['description']}", highlight=False)
    console.print(yaml.safe_dump({"rule": d["body"]["rule"]}, allow_unicode=True, sort_keys=False).rstrip())


@app.command("report")
def report(
    name: Annotated[str, typer.Argument(help="the segment's name")],
    days: Annotated[int, typer.Option(help="how many days back, today included (1-366)")] = 30,
    data_dir: DataDir = DEFAULT_DATA_DIR, workspace: Workspace = "demo", url: Url = None, token: Token = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
) -> None:  # fmt: skip
    """Entries, exits and size at the end of each day (the workspace's time zone)."""
    body = Api(url, token, data_dir, workspace).call("GET", f"/api/v1/segments/{name}/report", params={"days": days})
    if as_json:
        console.print_json(data=body)
        return
    console.print(f"[bold]{body['segment']}[/]  {body['size']:,} members now (days in {body['timezone']})")
    history = body.get("history") or {}
    table = Table("day", "entries", "exits", "size", "source", box=None, header_style="bold")
    for col in table.columns[1:4]:
        col.justify = "right"
    for d in body["days"]:
        if d["source"] == "pending":
            table.add_row(d["day"], "…", "…", "…", "pending")
            continue
        source = "defined" if d["day"] == history.get("defined") else d["source"]
        table.add_row(d["day"], f"+{d['entries']:,}" if d["entries"] else "", f"-{d['exits']:,}" if d["exits"] else "",
                      f"{d['size']:,}", source)  # fmt: skip
    console.print(table)
    if history.get("status") == "running":
        console.print(f"reconstructing the days before {history['defined']}: {history.get('days_done', 0)}"
                      f" of {history.get('days_total') or '?'} days done")  # fmt: skip
    elif history.get("status") == "queued":
        console.print(f"the days before {history['defined']} are queued for reconstruction")
    if any(d["source"] == "reconstructed" for d in body["days"]):
        console.print(f"reconstructed: days before {history['defined']}, rebuilt from the events up to the end"
                      " of each day", highlight=False)  # fmt: skip


@app.command("export")
def export(
    name: Annotated[str, typer.Argument(help="the segment's name")],
    output: Annotated[Path, typer.Option("--output", "-o", help="the CSV file to write")],
    traits: Annotated[str | None, typer.Option(help="trait columns, comma separated (name,member_rank)")] = None,
    computed: Annotated[str | None, typer.Option(help="computed trait columns, comma separated (ltv)")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR, workspace: Workspace = "demo", url: Url = None, token: Token = None,
) -> None:  # fmt: skip
    """Write the members to a CSV file (UTF-8 with a BOM, for Excel), streamed from the server."""
    params = {k: v for k, v in (("traits", traits), ("computed", computed)) if v}
    api = Api(url, token, data_dir, workspace)
    tmp = output.with_name(output.name + ".part")  # a failed download leaves no half file behind
    try:
        size = api.download(f"/api/v1/segments/{name}/members.csv", tmp, params=params)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    with output.open(encoding="utf-8-sig", newline="") as f:
        rows = sum(1 for _ in csv.reader(f)) - 1
    console.print(f"{output}: {rows:,} members, {size:,} bytes")
