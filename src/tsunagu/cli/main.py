"""The `tsunagu` command."""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated

import typer

from .. import __version__
from ..app import Platform
from ..core.errors import TsunaguError
from . import datahub, people, segments, user, workspace
from ._common import DEFAULT_DATA_DIR, DataDir, console, fail, load_credentials, save_credentials
from .apply import apply
from .demo import define_demo_segments, demo, ensure_workspace, load_demo
from .serve import run_server

app = typer.Typer(
    name="tsunagu",
    help="tsunagu: one person, one timeline, across web, app and store.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(workspace.app, name="workspace")
app.add_typer(people.app, name="people")
app.add_typer(user.app, name="user")
app.add_typer(segments.app, name="segments")
app.command("demo")(demo)
app.command("apply")(apply)
app.command("import")(datahub.import_)
app.add_typer(datahub.app, name="tables")

DEMO_USER = "admin@example.com"
Host = Annotated[str, typer.Option("--host", help="interface to listen on")]
Port = Annotated[int, typer.Option("--port", "-p", help="port to listen on")]


@app.command()
def serve(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: Host = "127.0.0.1",
    port: Port = 8080,
    analytics_interval: Annotated[
        float,
        typer.Option(help="seconds between analytics catch-ups with the log (reads that need it always wait for it)"),
    ] = 0.1,
) -> None:
    """Serve a data directory: ingest, admin API and UI."""
    run_server(data_dir, host, port, analytics_interval=analytics_interval)


@app.command()
def quickstart(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: Host = "127.0.0.1",
    port: Port = 8080,
    size: Annotated[int, typer.Option("--size", "-n", help="people in the demo workspace")] = 2000,
) -> None:
    """Create the demo workspace (once), load a year of demo data, and serve it."""
    data_dir.mkdir(parents=True, exist_ok=True)

    async def prepare() -> None:
        platform = Platform(data_dir)
        try:
            platform.lock()
            creds = ensure_workspace(platform, "demo")
            if creds:
                password = secrets.token_urlsafe(12)
                platform.control.create_user("demo", DEMO_USER, password)
                save_credentials(data_dir, {**creds.to_dict(), "ui_email": DEMO_USER, "ui_password": password})
                console.print(f"created the demo workspace in [bold]{data_dir}[/]; loading {size:,} people…")
                # the example segments first: they count the demo year live, no back-fill
                await define_demo_segments(platform, "demo", platform.clock())
                await load_demo(platform, "demo", size, 42, None)
        except TsunaguError as exc:
            fail(exc.message)
        finally:
            await platform.close()
            platform.unlock()

    asyncio.run(prepare())
    creds = load_credentials(data_dir, "demo") or {}
    url = f"http://{host}:{port}"
    banner = "\n".join(
        [
            f"[bold green]tsunagu is running[/] at [bold cyan]{url}[/]  (data: {data_dir})",
            "  workspace:          demo",
            f"  write key (ingest): [cyan]{creds.get('write_key', '?')}[/]",
            f"  API token (admin):  [cyan]{creds.get('api_token', '?')}[/]",
            f"  admin UI:           [bold cyan]{url}/ui/[/]  workspace demo, "
            f"{creds.get('ui_email', '?')} / [cyan]{creds.get('ui_password', '?')}[/]",
            f"  OpenAPI:            {url}/openapi.json",
            "  try:  tsunagu people search ゴールド   |   "
            f"curl -u {creds.get('write_key', 'WRITE_KEY')}: {url}/v1/track "
            '-d \'{"userId":"M000001","event":"view"}\'',
            "Press Ctrl+C to stop.",
        ]
    )
    run_server(data_dir, host, port, banner=banner)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    app()


__all__ = ["app", "main"]
