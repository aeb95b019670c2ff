"""`tsunagu demo`: load the demo retailer into a workspace, through the real pipeline."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..app import Platform
from ..core.config import WorkspaceConfig
from ..core.errors import InvalidInput, TsunaguError
from ..core.events import decode_message, normalize
from ._common import DEFAULT_DATA_DIR, DataDir, console, fail, save_credentials

if TYPE_CHECKING:
    from ..storage.control import Credentials

DEMO_CONFIG = WorkspaceConfig(
    identifier_traits={"email": "email", "phone": "phone", "line_id": "line_id", "pos_customer_id": "pos_customer_id"},
)


DEMO_DEFINITIONS = Path(__file__).parent.parent / "demo" / "retail.yaml"


async def define_demo_segments(platform: Platform, workspace: str, now: int) -> int:
    """Define the demo retailer's segments and traits (examples/retail.yaml) in a workspace."""
    import yaml

    from ..core.plan import flatten_document

    pipe = await platform.pipeline(workspace)
    items, _ = flatten_document(yaml.safe_load(DEMO_DEFINITIONS.read_text(encoding="utf-8")))
    changes = await pipe.apply(items, now)
    return sum(1 for c in changes if c.action in ("create", "update"))


def ensure_workspace(platform: Platform, name: str) -> Credentials | None:
    """Create the workspace if it is new; return its keys then (they are shown once)."""
    if platform.control.workspace(name) is not None:
        return None
    return platform.control.create_workspace(name, DEMO_CONFIG)


async def load_demo(
    platform: Platform, workspace: str, size: int, seed: int, end: date | None, *, progress: bool = True
) -> int:
    from ..demo.generator import generate

    # The year ends yesterday (Tokyo), so no demo event lies in the future.
    end = end or (datetime.now(ZoneInfo("Asia/Tokyo")).date() - timedelta(days=1))
    pipe = await platform.pipeline(workspace)
    encode = msgspec.json.Encoder().encode
    total = 0
    chunk: list[Any] = []
    bar = Progress(
        TextColumn("[bold]demo[/] {task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, disable=not progress,
    )  # fmt: skip
    with bar:
        # Messages come in time order over `days` days: progress is the day reached.
        days = 365
        first_day = end - timedelta(days=days - 1)
        task = bar.add_task(f"{size:,} people, {days} days", total=days)
        for message in generate(size, seed=seed, end=end, days=days):
            day = date.fromisoformat(message["timestamp"][:10])
            bar.update(task, completed=min(days, (day - first_day).days + 1))
            try:
                msg = decode_message(encode(message))
                chunk.append(normalize(msg, received_at=platform.clock(), new_id=platform.new_id))
            except InvalidInput as exc:
                console.print(f"[yellow]skipped a demo message:[/] {exc}")
                continue
            if len(chunk) >= 1000:
                total += (await pipe.submit(chunk, platform.clock())).accepted
                chunk = []
        if chunk:
            total += (await pipe.submit(chunk, platform.clock())).accepted
        bar.update(task, completed=days)
    await pipe.flush()
    return total


def demo(
    size: Annotated[int, typer.Option("--size", "-n", help="number of people")] = 2000,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    workspace: Annotated[str, typer.Option("--workspace", "-w", help="workspace to load into")] = "demo",
    seed: Annotated[int, typer.Option(help="random seed: the same seed gives the same data")] = 42,
    end: Annotated[
        str | None, typer.Option(help="last day of the year of data (YYYY-MM-DD); default yesterday")
    ] = None,
) -> None:
    """Generate a Japanese fashion retailer's year (stores, members, web, POS) into a workspace."""
    end_date = date.fromisoformat(end) if end else None
    n = asyncio.run(_demo(data_dir, workspace, size, seed, end_date))
    console.print(f"loaded {n:,} events for {size:,} people into workspace [bold]{workspace}[/]")


async def _demo(data_dir: Path, workspace: str, size: int, seed: int, end: date | None) -> int:
    platform = Platform(data_dir)
    try:
        platform.lock()
        creds = ensure_workspace(platform, workspace)
        if creds:
            save_credentials(data_dir, creds.to_dict())
        return await load_demo(platform, workspace, size, seed, end)
    except TsunaguError as exc:
        fail(exc.message)
        raise AssertionError from exc
    finally:
        await platform.close()
        platform.unlock()
