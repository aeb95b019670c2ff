"""What every command shares: the data directory, the console, errors, the API client."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import httpx
import typer
from rich.console import Console

console = Console(soft_wrap=True)  # a long line stays one line in a log or a pipe (a command, a URL)
err_console = Console(stderr=True, soft_wrap=True)  # errors stay one copyable line

DEFAULT_DATA_DIR = Path("tsunagu-data")

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", "-d", envvar="TSUNAGU_DATA_DIR", help="the data directory", show_default=True),
]


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def credentials_path(data_dir: Path) -> Path:
    return data_dir / "credentials.json"


def save_credentials(data_dir: Path, creds: dict[str, str]) -> None:
    """Keep a local copy of a workspace's keys for the CLI (owner-readable only)."""
    path = credentials_path(data_dir)
    known: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    known[creds["workspace"]] = creds
    path.write_text(json.dumps(known, indent=2))
    path.chmod(0o600)


def load_credentials(data_dir: Path, workspace: str) -> dict[str, str] | None:
    path = credentials_path(data_dir)
    if not path.exists():
        return None
    return json.loads(path.read_text()).get(workspace)


class Api:
    """The admin API, found from flags, the environment or the data directory."""

    def __init__(self, url: str | None, token: str | None, data_dir: Path, workspace: str) -> None:
        if url is None:
            server = data_dir / "server.json"
            url = json.loads(server.read_text())["url"] if server.exists() else "http://127.0.0.1:8080"
        if token is None:
            creds = load_credentials(data_dir, workspace)
            if creds is None:
                fail(
                    f"no API token: pass --token or set TSUNAGU_TOKEN (or run `tsunagu quickstart`, "
                    f"which keeps the demo workspace's keys in {credentials_path(data_dir)})"
                )
                raise AssertionError
            token = creds["api_token"]
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        self._zone: ZoneInfo | None = None

    @property
    def zone(self) -> ZoneInfo:
        """The workspace's time zone: every time a command prints is in it (one clock with the UI)."""
        if self._zone is None:
            name = self.call("GET", "/api/v1/workspace").get("config", {}).get("timezone") or "UTC"
            self._zone = ZoneInfo(name)
        return self._zone

    def when(self, iso: str | None, *, seconds: bool = False) -> str:
        """An API time (ISO 8601) as people read it: in the workspace's zone, the zone shown."""
        if not iso:
            return "-"
        at = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(self.zone)
        return at.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body = self.request(method, path, **kwargs)
        if status >= 400:
            fail(body.get("error", {}).get("message", str(body)))
        return body

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """(status, JSON body), errors included: for commands that show an error's details."""
        try:
            resp = self._client.request(method, path, **kwargs)
        except httpx.ConnectError:
            fail(f"cannot reach tsunagu at {self.url}: is `tsunagu serve` running? (--url to point elsewhere)")
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, {"error": {"message": resp.text}}

    def download(self, path: str, out: Path, **kwargs: Any) -> int:
        """Stream a GET's body into a file (never whole in memory); returns its size in bytes."""
        size = 0
        try:
            with self._client.stream("GET", path, **kwargs) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    try:
                        message = resp.json().get("error", {}).get("message", resp.text)
                    except ValueError:
                        message = resp.text
                    fail(message)
                with out.open("wb") as f:
                    for chunk in resp.iter_bytes():
                        f.write(chunk)
                        size += len(chunk)
        except httpx.ConnectError:
            fail(f"cannot reach tsunagu at {self.url}: is `tsunagu serve` running? (--url to point elsewhere)")
        return size


Url = Annotated[str | None, typer.Option("--url", envvar="TSUNAGU_URL", help="the server's URL")]
Token = Annotated[str | None, typer.Option("--token", envvar="TSUNAGU_TOKEN", help="the workspace's API token")]
Workspace = Annotated[str, typer.Option("--workspace", "-w", envvar="TSUNAGU_WORKSPACE", help="workspace name")]
