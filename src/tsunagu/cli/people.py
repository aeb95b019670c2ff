"""`tsunagu people ...`: look people up, read timelines, delete a person (over the API)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from ._common import DEFAULT_DATA_DIR, Api, DataDir, Token, Url, Workspace, console

app = typer.Typer(help="Look up people and their timelines.", no_args_is_help=True)

Ref = Annotated[str, typer.Argument(help="TYPE:VALUE (user_id:M000123, email:a@example.jp) or a person id")]
AsJson = Annotated[bool, typer.Option("--json", help="print the API's JSON")]


def _resolve(api: Api, ref: str) -> dict[str, Any]:
    if ref.startswith("p_") or ":" not in ref:
        return api.call("GET", f"/api/v1/people/{ref}")
    typ, _, value = ref.partition(":")
    return api.call("GET", "/api/v1/people/lookup", params={"type": typ, "value": value})


def _print_person(api: Api, p: dict[str, Any]) -> None:
    console.print(
        f"[bold]{p['person_id']}[/]  first seen {api.when(p['first_seen'])}, last seen {api.when(p['last_seen'])},"
        f" {p['event_count']} events"
    )
    for typ, values in p["identifiers"].items():
        console.print(f"  {typ}: {', '.join(values)}")
    if p["channels"]:
        console.print("  channels: " + ", ".join(f"{c} ({n})" for c, n in p["channels"].items()))
    if p["traits"]:
        console.print("  traits: " + ", ".join(f"{k}={v}" for k, v in p["traits"].items()))
    if p["merged_ids"]:
        console.print(f"  merged: {', '.join(p['merged_ids'])}")
    for c in p["conflicts"]:
        console.print(f"  [yellow]conflict[/]: {c['type']} {c['values']}")


def _yen(value: Any) -> str:
    return f"¥{value:,}" if isinstance(value, (int, float)) else str(value)


def _summary(e: dict[str, Any]) -> str:
    """One readable line per timeline entry: what was looked at, bought, joined."""
    p = e["properties"]
    if e["type"] in ("page", "screen"):
        return f"{e['event'] or p.get('title') or ''} {p.get('path') or p.get('url') or ''}".strip()
    if e["type"] == "identify":
        return ", ".join(f"{k}={v}" for k, v in e["traits"].items())
    if e["type"] == "merge":
        ids = p.get("identifiers", {})
        return "joined " + ", ".join(f"{t}:{v}" for t, vs in ids.items() for v in vs)
    if e["type"] == "identity_conflict":
        return f"refused: {p.get('type')} {p.get('values')}"
    if e["type"] in ("segment_enter", "segment_exit"):
        return str(p.get("segment", ""))
    if e["event"] == "checkin":
        return str(p.get("store_name") or e.get("store_id") or "")
    if e["event"] == "buy":
        items = p.get("items") or p.get("products") or []
        names = ", ".join(str(i.get("product_name") or i.get("sku")) for i in items if isinstance(i, dict))
        return f"{_yen(p.get('revenue', p.get('total', '')))} {names}".strip()
    if "sku" in p or "product_name" in p:
        return f"{p.get('product_name') or p.get('sku')} {_yen(p.get('price', ''))}".strip()
    return ", ".join(f"{k}={v}" for k, v in p.items() if not isinstance(v, (list, dict)))


@app.command("show")
def show(
    ref: Ref, data_dir: DataDir = DEFAULT_DATA_DIR, workspace: Workspace = "demo",
    url: Url = None, token: Token = None, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Show a person: identifiers, traits, first and last seen, channels."""
    api = Api(url, token, data_dir, workspace)
    person = _resolve(api, ref)
    if as_json:
        print(json.dumps(person, ensure_ascii=False, indent=2))
    else:
        _print_person(api, person)


@app.command("events")
def events(
    ref: Ref, data_dir: DataDir = DEFAULT_DATA_DIR, workspace: Workspace = "demo",
    url: Url = None, token: Token = None, as_json: AsJson = False,
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 50,
    event: Annotated[list[str] | None, typer.Option(help="only these event names")] = None,
    channel: Annotated[list[str] | None, typer.Option(help="only these channels")] = None,
) -> None:  # fmt: skip
    """A person's timeline, newest first."""
    api = Api(url, token, data_dir, workspace)
    person = _resolve(api, ref)
    page = api.call(
        "GET", f"/api/v1/people/{person['person_id']}/events",
        params={"limit": limit, "event": event or [], "channel": channel or []},
    )  # fmt: skip
    if as_json:
        print(json.dumps(page, ensure_ascii=False, indent=2))
        return
    table = Table(f"when ({api.zone.key})", "channel", "store", "event", "what")
    for e in page["events"]:
        table.add_row(
            api.when(e["timestamp"]),
            e["channel"],
            e["store_id"] or "",
            e["event"] if e["type"] == "track" else e["type"],
            _summary(e),
        )
    console.print(table)


@app.command("search")
def search(
    q: Annotated[str | None, typer.Argument(help="identifier value or text in traits")] = None,
    trait: Annotated[str | None, typer.Option(help="trait name")] = None,
    value: Annotated[str | None, typer.Option(help="trait value")] = None,
    limit: int = 20,
    data_dir: DataDir = DEFAULT_DATA_DIR, workspace: Workspace = "demo",
    url: Url = None, token: Token = None, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Find people by identifier or trait."""
    params: dict[str, Any] = {"limit": limit}
    if q:
        params["q"] = q
    if trait:
        params["trait"] = trait
    if value is not None:
        params["value"] = value
    api = Api(url, token, data_dir, workspace)
    page = api.call("GET", "/api/v1/people", params=params)
    if as_json:
        print(json.dumps(page, ensure_ascii=False, indent=2))
        return
    table = Table("person", "user_id", "name", "channels", f"last seen ({api.zone.key})")
    for p in page["people"]:
        table.add_row(
            p["person_id"], ", ".join(p["identifiers"].get("user_id", [])), str(p["traits"].get("name", "")),
            ", ".join(p["channels"]), api.when(p["last_seen"]),
        )  # fmt: skip
    console.print(table)


@app.command("delete")
def delete(
    ref: Ref, data_dir: DataDir = DEFAULT_DATA_DIR, workspace: Workspace = "demo",
    url: Url = None, token: Token = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
) -> None:  # fmt: skip
    """Delete a person and all their events everywhere (the right to be forgotten)."""
    api = Api(url, token, data_dir, workspace)
    person = _resolve(api, ref)
    if not yes:
        typer.confirm(f"Delete {person['person_id']} and {person['event_count']} events for good?", abort=True)
    result = api.call("DELETE", f"/api/v1/people/{person['person_id']}")
    console.print(
        f"deleted {result['person_id']}: {result['events']} events, {result['identifiers']} identifiers, "
        f"{result['log_records_rewritten']} log records rewritten"
    )
