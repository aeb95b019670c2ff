"""`tsunagu apply` and `tsunagu segments list/show` against a real server with the demo retailer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import Server, free_port
from .test_cli import tsunagu

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "retail.yaml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("apply")
    tsunagu("demo", "--size", "60", "--data-dir", str(data), "--end", "2026-11-01")
    server = Server(data, free_port())
    (data / "server.json").write_text(json.dumps({"url": server.url}))
    server.start()
    yield server
    server.stop()


def test_applying_the_example_twice_changes_nothing_the_second_time(demo: Server) -> None:
    d = str(demo.data_dir)
    dry = tsunagu("apply", str(EXAMPLE), "--dry-run", "--data-dir", d).stdout
    assert "dry run" in dry and "+ segment vip" in dry and "10 to create" in dry
    assert "segments[0]" in dry  # where each definition is in the file
    first = tsunagu("apply", str(EXAMPLE), "--data-dir", d).stdout
    assert "+ computed trait outer_views_28d" in first and "10 created" in first
    assert "ready" in first  # --wait followed the back-fill to the end
    second = tsunagu("apply", str(EXAMPLE), "--data-dir", d).stdout
    assert "nothing to change (10 unchanged)" in second and "+ " not in second

    listed = json.loads(tsunagu("segments", "list", "--json", "--data-dir", d).stdout)["segments"]
    assert {s["name"] for s in listed} >= {"vip", "store_regulars", "lapsed_vip", "online_to_store"}
    assert all(s["status"] == "ready" for s in listed)
    regulars = next(s for s in listed if s["name"] == "store_regulars")
    table = tsunagu("segments", "list", "--data-dir", d).stdout
    assert "store_regulars" in table and "直近90日に店舗で2回以上購入" in table
    shown = tsunagu("segments", "show", "store_regulars", "--data-dir", d).stdout
    assert f"{regulars['members']:,} members" in shown and "within_days: 90" in shown


def test_an_update_prints_the_changed_leaf_and_a_bad_file_names_its_place(demo: Server, tmp_path: Path) -> None:
    d = str(demo.data_dir)
    changed = tmp_path / "changed.yaml"
    text = EXAMPLE.read_text(encoding="utf-8")
    changed.write_text(text.replace("within_days: 90\n      count", "within_days: 60\n      count"), encoding="utf-8")
    tsunagu("apply", str(EXAMPLE), "--no-wait", "--data-dir", d)
    out = tsunagu("apply", str(changed), "--dry-run", "--data-dir", d).stdout
    assert "~ segment store_regulars" in out and "rule.within_days: 90 → 60" in out and "1 to update" in out

    bad = tmp_path / "bad.json"
    broken = {"name": "broken", "rule": {"all": [{"did": "buy", "count": {"op": "x"}}]}}
    bad.write_text(json.dumps({"segments": [{"name": "ok", "rule": {"did": "buy"}}, broken]}))
    result = tsunagu("apply", str(bad), "--data-dir", d, check=False)
    assert result.returncode == 1
    assert "nothing applied" in result.stderr and "bad.json: segments[1].rule.all[0].count.op" in result.stderr
    names = {s["name"] for s in json.loads(tsunagu("segments", "list", "--json", "--data-dir", d).stdout)["segments"]}
    assert "ok" not in names


def test_apply_prints_each_warning_at_its_place_and_json_carries_them(demo: Server, tmp_path: Path) -> None:
    d = str(demo.data_dir)
    path = tmp_path / "warned.yaml"
    path.write_text(
        "computed_traits:\n"
        "  - {name: page_count, event: page, agg: count}\n"
        "segments:\n"
        "  - {name: buyers, rule: {did: buy}}\n"
        "  - name: typo\n"
        "    rule: {all: [{did: buy}, {did: biy, within_days: 30}]}\n",
        encoding="utf-8",
    )
    dry = tsunagu("apply", str(path), "--dry-run", "--data-dir", d)
    assert "3 to create" in dry.stdout
    lines = [line for line in dry.stderr.splitlines() if line.startswith("warning:")]
    assert lines == [
        "warning: warned.yaml: computed_traits[0].event: no event 'page' has been seen in this workspace;"
        " did you mean '$page' (page views)?",
        "warning: warned.yaml: segments[1].rule.all[1].did: no event 'biy' has been seen in this workspace;"
        " did you mean 'buy'?",
    ]
    assert "2 warning(s)" in dry.stderr
    body = json.loads(tsunagu("apply", str(path), "--json", "--data-dir", d).stdout)
    assert body["summary"]["create"] == 3 and all(c["status"] == "ready" for c in body["changes"])
    assert [(w["index"], w["place"], w["suggestions"]) for w in body["warnings"]] == [
        (0, "warned.yaml: computed_traits[0].event", ["$page"]),
        (2, "warned.yaml: segments[1].rule.all[1].did", ["buy"]),
    ]
