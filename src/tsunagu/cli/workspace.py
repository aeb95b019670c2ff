"""`tsunagu workspace ...`: create and list workspaces."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from ..app import open_control
from ..core.config import WorkspaceConfig
from ..core.errors import TsunaguError
from ._common import DEFAULT_DATA_DIR, DataDir, console, fail

app = typer.Typer(help="Create and list workspaces.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="workspace name: lowercase letters, digits, - and _")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="print the keys as JSON")] = False,
    identifier_trait: Annotated[
        list[str] | None,
        typer.Option("--identifier-trait", help="TRAIT[=TYPE]: an identify trait that identifies a person"),
    ] = None,
) -> None:
    """Create a workspace and print its write key (ingest) and API token (admin)."""
    config = WorkspaceConfig()
    for spec in identifier_trait or []:
        trait, _, typ = spec.partition("=")
        config.identifier_traits[trait] = typ or trait
    try:
        creds = open_control(data_dir).create_workspace(name, config)
    except TsunaguError as exc:
        fail(exc.message)
        return
    if as_json:
        print(json.dumps(creds.to_dict()))
        return
    console.print(f"created workspace [bold]{name}[/] in {data_dir}")
    console.print(f"  write key (ingest): [cyan]{creds.write_key}[/]")
    console.print(f"  API token (admin):  [cyan]{creds.api_token}[/]")
    console.print("Keep the API token secret: it is shown only once.")


@app.command("list")
def list_(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """List the workspaces of a data directory."""
    table = Table("workspace", "identifier traits", "time zone")
    for ws in open_control(data_dir).workspaces():
        table.add_row(
            ws.name, ", ".join(f"{k}→{v}" for k, v in ws.config.identifier_traits.items()), ws.config.timezone
        )
    console.print(table)
