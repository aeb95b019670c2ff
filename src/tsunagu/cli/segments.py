"""`tsunagu segments ...`: check a segment rule and show the SQL it runs as."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from ..core.errors import InvalidInput
from ..core.segments import day_of, parse_rule
from ..sql.segments import DIALECTS, compile_segment
from ._common import console, fail

app = typer.Typer(help="Segment rules: validate them and see their SQL.", no_args_is_help=True)


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
