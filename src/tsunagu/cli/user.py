"""`tsunagu user ...`: the people who log in to a workspace's admin UI.

Both commands write the control database that a running server reads on every request,
so a reset or a deletion logs the user out of the UI at once, no restart needed.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ..app import open_control
from ..core.errors import TsunaguError
from ._common import DEFAULT_DATA_DIR, DataDir, console, fail

app = typer.Typer(help="Manage admin UI users.", no_args_is_help=True)


def _ended(n: int) -> str:
    return f"; {n} session{'' if n == 1 else 's'} ended" if n else ""


@app.command("create")
def create(
    workspace: Annotated[str, typer.Argument(help="workspace name")],
    email: Annotated[str, typer.Argument(help="the user's email (their login)")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="at least 8 characters")
    ],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Create a user of a workspace, or reset their password (which ends their UI sessions).

    Passwords are stored as argon2id hashes."""
    try:
        ended = open_control(data_dir).create_user(workspace, email, password)
    except TsunaguError as exc:
        fail(exc.message)
        return
    console.print(f"user [bold]{email}[/] can now log in to workspace [bold]{workspace}[/]{_ended(ended)}")


@app.command("delete")
def delete(
    workspace: Annotated[str, typer.Argument(help="workspace name")],
    email: Annotated[str, typer.Argument(help="the user's email (their login)")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Delete a user of a workspace and end their UI sessions."""
    store = open_control(data_dir)
    if store.workspace(workspace) is None:
        fail(f"no workspace {workspace!r}")
    if not store.delete_user(workspace, email):
        fail(f"no user {email!r} in workspace {workspace!r}")
    console.print(f"user [bold]{email}[/] deleted from workspace [bold]{workspace}[/]; their sessions ended")
