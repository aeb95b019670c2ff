"""`tsunagu user ...`: the people who log in to a workspace's admin UI."""

from __future__ import annotations

from typing import Annotated

import typer

from ..core.errors import TsunaguError
from ..storage.control import ControlStore
from ._common import DEFAULT_DATA_DIR, DataDir, console, fail

app = typer.Typer(help="Manage admin UI users.", no_args_is_help=True)


@app.command("create")
def create(
    workspace: Annotated[str, typer.Argument(help="workspace name")],
    email: Annotated[str, typer.Argument(help="the user's email (their login)")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="at least 8 characters")
    ],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Create (or reset the password of) a user of a workspace. Passwords are stored as argon2id hashes."""
    try:
        ControlStore(data_dir / "control.sqlite").create_user(workspace, email, password)
    except TsunaguError as exc:
        fail(exc.message)
    console.print(f"user [bold]{email}[/] can now log in to workspace [bold]{workspace}[/]")
