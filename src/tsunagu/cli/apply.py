"""`tsunagu apply FILE...`: segments and computed traits from YAML or JSON files, with a diff.

The files' definitions go to `POST /api/v1/apply` as one list, so they are checked all
or nothing before anything changes; errors name the file and the place in it. Names the
workspace has never seen (`{"did": "page"}`: page views are `$page`) are warnings, at
their place in the files too, with the nearest names; they do not stop the apply.
Applying the same files again prints "nothing to change". With `--wait` (the default) a
progress bar follows the back-fill until every changed definition is ready; `--json`
prints the API's answer instead (after the wait, with each warning's `place`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..core.errors import InvalidInput
from ..core.plan import flatten_document
from ._common import DEFAULT_DATA_DIR, Api, DataDir, Token, Url, Workspace, console, err_console, fail

__all__ = ["apply", "read_definitions"]

_STYLE = {"create": ("+", "green"), "update": ("~", "yellow"), "unchanged": ("=", "dim"), "delete": ("-", "red")}
_KIND = {"segment": "segment", "computed_trait": "computed trait"}


def read_definitions(paths: list[Path]) -> tuple[list[Any], list[str]]:
    """Every definition in the files, in order, and each one's place (`retail.yaml: segments[1]`)."""
    items: list[Any] = []
    places: list[str] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"{path}: {exc.strerror}")
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            fail(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}")
        try:
            found, where = flatten_document(_plain(data) if data is not None else [], path.name)
        except InvalidInput as exc:
            fail(exc.message)
        items += found
        places += where
    return items, places


def _plain(value: Any) -> Any:
    """YAML reads an unquoted 2026-01-01 as a date; definitions hold it as text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def _short(value: Any, width: int = 100) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= width else text[: width - 1] + "…"


def print_changes(changes: list[dict[str, Any]], places: list[str]) -> None:
    for c in changes:
        mark, style = _STYLE[c["action"]]
        where = f"  [dim]({places[c['index']]})[/]" if c["index"] is not None and c["index"] < len(places) else ""
        label = f"[{style}]{mark} {_KIND.get(c['kind'], c['kind'])} [bold]{c['name']}[/bold][/{style}]"
        if c["action"] == "unchanged":
            console.print(f"[dim]{mark} {_KIND.get(c['kind'], c['kind'])} {c['name']}  unchanged[/]", highlight=False)
            continue
        console.print(f"{label}{where}", highlight=False)
        if c["action"] == "create":
            body = c["after"] or {}
            shown = body.get("rule", {k: v for k, v in body.items() if k != "description"})
            if body.get("description"):
                console.print(f"    [green]{body['description']}[/]", highlight=False)
            console.print(f"    [green]{_short(shown)}[/]", highlight=False, soft_wrap=True)
        elif c["action"] == "update":
            for d in c["diff"]:
                before = _short(d["before"], 60) if "before" in d else "(none)"
                after = _short(d["after"], 60) if "after" in d else "(none)"
                console.print(f"    {d['path']}: [red]{before}[/] → [green]{after}[/]", highlight=False, soft_wrap=True)


def _summary(summary: dict[str, int], dry_run: bool) -> str:
    if not (summary["create"] or summary["update"] or summary["delete"]):
        return "nothing to change" + (f" ({summary['unchanged']} unchanged)" if summary["unchanged"] else "")
    done = {"create": "created", "update": "updated", "delete": "deleted"}
    parts = [f"{summary[a]} to {a}" if dry_run else f"{summary[a]} {done[a]}" for a in done]
    return ", ".join(parts) + f", {summary['unchanged']} unchanged"


def print_warnings(warnings: list[dict[str, Any]], places: list[str], applied: bool) -> None:
    """Each name the workspace never saw, at its place in the files, with the nearest names."""
    for w in warnings:
        err_console.print(f"[bold yellow]warning:[/] {_error_place(w['path'], places)}: {w['message']}",
                          highlight=False)  # fmt: skip
    if warnings:
        done = "applied all the same" if applied else "they do not stop an apply"
        err_console.print(f"{len(warnings)} warning(s): names this workspace has not seen ({done})", highlight=False)


def _error_place(field: str, places: list[str]) -> str:
    """`definitions[3].rule.all[0].op` -> `retail.yaml: segments[1].rule.all[0].op`."""
    m = re.match(r"definitions\[(\d+)\](.*)", field)
    if m and int(m.group(1)) < len(places):
        return places[int(m.group(1))] + m.group(2)
    return field


def _path(kind: str, name: str) -> str:
    return f"/api/v1/{'segments' if kind == 'segment' else 'computed-traits'}/{name}"


def wait_until_ready(api: Api, changed: list[tuple[str, str]], timeout: float = 3600, *, quiet: bool = False) -> None:
    """A progress bar over the back-fill of the changed definitions, until all are ready."""
    paths = [_path(kind, name) for kind, name in changed]
    seen: dict[str, tuple[int, int]] = {}  # back-fill id -> (persons done, persons total)
    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn("back-fill"), BarColumn(), MofNCompleteColumn(), TextColumn("people"), TimeElapsedColumn(),
        console=console, transient=False, disable=quiet,
    ) as progress:  # fmt: skip
        task = progress.add_task("back-fill", total=None)
        while time.monotonic() < deadline:
            states = [api.call("GET", p) for p in paths]
            running: set[str] = set()
            for s in states:
                for b in s.get("backfill") or []:
                    running.add(b["id"])
                    total = b["persons_total"] or seen.get(b["id"], (0, 0))[1]
                    seen[b["id"]] = (b["persons_done"], max(total, b["persons_done"]))
            for bid, (_, total) in list(seen.items()):
                if bid not in running:
                    seen[bid] = (total, total)  # finished since the last look
            total = sum(t for _, t in seen.values())
            progress.update(task, total=total or None, completed=sum(d for d, _ in seen.values()))
            if all(s["status"] == "ready" for s in states):
                progress.update(task, total=total or 1, completed=total or 1)
                return
            time.sleep(0.25)
    fail("timed out waiting for the back-fill; it carries on in the server (`tsunagu segments list`)")


def apply(
    files: Annotated[list[Path], typer.Argument(help="YAML or JSON definition files (docs/segments.md)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only show what would change")] = False,
    prune: Annotated[bool, typer.Option("--prune", help="also delete definitions the files do not name")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="follow the back-fill until all are ready")] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the API's answer (changes, summary, warnings) as JSON")
    ] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    workspace: Workspace = "demo",
    url: Url = None,
    token: Token = None,
) -> None:
    """Apply segments and computed traits from files: validated all or nothing, then a diff."""
    items, places = read_definitions(files)
    api = Api(url, token, data_dir, workspace)
    status, body = api.request("POST", "/api/v1/apply", json={"definitions": items, "dry_run": dry_run, "prune": prune})
    if status >= 400:
        error = body.get("error", {})
        errors = error.get("errors") or [{"field": "", "reason": error.get("message", "refused")}]
        err_console.print(f"[bold red]error:[/] nothing applied: {len(errors)} problem(s)")
        for e in errors:
            err_console.print(f"  {_error_place(e['field'], places)}: {e['reason']}", highlight=False)
        raise typer.Exit(1)
    warnings = body.get("warnings") or []
    changed = [(c["kind"], c["name"]) for c in body["changes"] if c["action"] in ("create", "update")]
    building = [c for c in body["changes"] if c["action"] != "delete" and c.get("status") == "building"]
    if as_json:
        if wait and not dry_run and building:
            wait_until_ready(api, changed, quiet=True)
            states = {(c["kind"], c["name"]): api.call("GET", _path(c["kind"], c["name"])) for c in building}
            for c in building:
                state = states[(c["kind"], c["name"])]
                c.update({k: state[k] for k in ("status", "members", "backfill") if k in state})
        for w in warnings:  # where each is in the files, as errors say it
            w["place"] = _error_place(w["path"], places)
        console.print_json(data=body)
        return
    if dry_run:
        console.print("[bold]dry run[/]: nothing is applied")
    print_changes(body["changes"], places)
    print_warnings(warnings, places, applied=not dry_run)
    console.print(_summary(body["summary"], dry_run), highlight=False)
    if wait and not dry_run and changed:
        if building:  # (a small history may be counted before the answer: then it is ready already)
            wait_until_ready(api, changed)
        console.print("[green]ready[/]")
