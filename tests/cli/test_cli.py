"""The `tsunagu` command as a user runs it: demo data in, people out, through a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import Server, free_port


def tsunagu(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "tsunagu", *args], capture_output=True, text=True, timeout=300, env={"COLUMNS": "200",
         **__import__("os").environ}
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("cli")
    tsunagu("demo", "--size", "40", "--data-dir", str(data), "--end", "2026-11-01")
    server = Server(data, free_port())
    (data / "server.json").write_text(json.dumps({"url": server.url}))
    server.start()
    yield server
    server.stop()


def test_demo_loads_a_retailer_whose_members_the_cli_can_show(demo_server: Server) -> None:
    d = str(demo_server.data_dir)
    person = json.loads(tsunagu("people", "show", "user_id:M000001", "--data-dir", d, "--json").stdout)
    assert person["identifiers"]["user_id"] == ["M000001"]
    assert person["event_count"] > 0 and person["traits"]["member_rank"]
    timeline = json.loads(tsunagu("people", "events", "user_id:M000001", "--data-dir", d, "--json").stdout)
    assert len(timeline["events"]) == min(50, person["event_count"] + len(person["merged_ids"]))
    plain = tsunagu("people", "events", "user_id:M000001", "--data-dir", d).stdout
    assert "when" in plain and "channel" in plain


def test_people_search_finds_members_by_trait_text_and_by_trait(demo_server: Server) -> None:
    d = str(demo_server.data_dir)
    by_text = json.loads(tsunagu("people", "search", "example", "--data-dir", d, "--json").stdout)
    assert by_text["people"]
    rank = by_text["people"][0]["traits"]["member_rank"]
    by_trait = json.loads(
        tsunagu("people", "search", "--trait", "member_rank", "--value", rank, "--data-dir", d, "--json").stdout
    )
    assert by_trait["people"] and all(p["traits"]["member_rank"] == rank for p in by_trait["people"])


def test_people_delete_forgets_the_person(demo_server: Server) -> None:
    d = str(demo_server.data_dir)
    out = tsunagu("people", "delete", "user_id:M000002", "--yes", "--data-dir", d).stdout
    assert "deleted" in out
    gone = tsunagu("people", "show", "user_id:M000002", "--data-dir", d, check=False)
    assert gone.returncode == 1 and "no person" in gone.stderr


def test_demo_refuses_a_data_dir_a_server_is_using(demo_server: Server) -> None:
    result = tsunagu("demo", "--size", "5", "--data-dir", str(demo_server.data_dir), check=False)
    assert result.returncode == 1 and "in use by another tsunagu process" in result.stderr


def test_workspace_create_prints_keys_as_json_and_refuses_a_taken_name(tmp_path: Path) -> None:
    creds = json.loads(tsunagu("workspace", "create", "shop", "--data-dir", str(tmp_path), "--json").stdout)
    assert set(creds) == {"workspace", "write_key", "api_token"} and creds["workspace"] == "shop"
    again = tsunagu("workspace", "create", "shop", "--data-dir", str(tmp_path), "--json", check=False)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_people_commands_say_how_to_reach_the_server_when_it_is_down(tmp_path: Path) -> None:
    result = tsunagu(
        "people", "show", "user_id:U1", "--data-dir", str(tmp_path), "--url", f"http://127.0.0.1:{free_port()}",
        "--token", "tsk_x", check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "is `tsunagu serve` running?" in result.stderr


def test_the_cli_prints_times_in_the_workspaces_zone_with_the_zone_shown(demo_server: Server) -> None:
    d = str(demo_server.data_dir)
    person = json.loads(tsunagu("people", "show", "user_id:M000001", "--data-dir", d, "--json").stdout)
    from datetime import datetime
    from zoneinfo import ZoneInfo

    last = datetime.fromisoformat(person["last_seen"].replace("Z", "+00:00")).astimezone(ZoneInfo("Asia/Tokyo"))
    shown = tsunagu("people", "show", "user_id:M000001", "--data-dir", d).stdout
    # the same clock as the UI: the demo workspace's zone, whatever the machine's TZ
    assert f"last seen {last:%Y-%m-%d %H:%M} JST" in shown, shown
    other_tz = subprocess.run(
        [sys.executable, "-m", "tsunagu", "people", "show", "user_id:M000001", "--data-dir", d],
        capture_output=True, text=True, timeout=120, env={**__import__("os").environ, "TZ": "America/New_York"},
    )  # fmt: skip
    assert other_tz.stdout == shown
    table = tsunagu("people", "events", "user_id:M000001", "--data-dir", d).stdout
    assert "Asia/Tokyo" in table and " JST" in table


def test_a_long_line_stays_one_line_when_the_output_is_piped(demo_server: Server) -> None:
    d = str(demo_server.data_dir)
    narrow = subprocess.run(
        [sys.executable, "-m", "tsunagu", "people", "show", "user_id:M000001", "--data-dir", d],
        capture_output=True, text=True, timeout=120, env={**__import__("os").environ, "COLUMNS": "40"},
    )  # fmt: skip
    first = narrow.stdout.splitlines()[0]
    assert "first seen" in first and "events" in first, narrow.stdout  # not broken at 40 columns
