"""`tsunagu segments report` and `export`, run as a user runs them, against the clocked server."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..clocked import NAME, ClockedServer, jst, tell_story
from ..conftest import Workspace
from .test_cli import tsunagu


@pytest.fixture(scope="module")
def clocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockedServer]:
    srv = ClockedServer(tmp_path_factory.mktemp("clocked-cli"), jst(2026, 3, 1, 9, 0)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def story(clocked: ClockedServer) -> Workspace:
    return tell_story(clocked)


def test_segments_report_prints_a_row_per_tokyo_day(story: Workspace) -> None:
    out = tsunagu("segments", "report", "gold", "--days", "4", "--url", story.url, "--token", story.api_token).stdout
    assert "gold  3 members now (days in Asia/Tokyo)" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("2026-")]
    assert rows == [["2026-03-02", "+2", "2", "live"], ["2026-03-03", "+1", "-1", "2", "live"],
                    ["2026-03-04", "2", "live"], ["2026-03-05", "+2", "-1", "3", "live"]]  # fmt: skip


def test_segments_report_marks_the_definition_day_and_the_reconstructed_days(story: Workspace) -> None:
    out = tsunagu("segments", "report", "gold", "--days", "6", "--url", story.url, "--token", story.api_token).stdout
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("2026-")]
    assert rows[:2] == [["2026-02-28", "0", "reconstructed"], ["2026-03-01", "0", "defined"]]
    assert "reconstructed: days before 2026-03-01, rebuilt from the events up to the end of each day" in out


def test_segments_export_writes_the_csv_and_refuses_an_unknown_segment(story: Workspace, tmp_path: Path) -> None:
    target = tmp_path / "gold.csv"
    auth = ("--url", story.url, "--token", story.api_token)
    out = tsunagu("segments", "export", "gold", "-o", str(target), "--traits", "name", "--computed", "ltv", *auth)
    assert "3 members" in out.stdout
    assert target.read_bytes().startswith(b"\xef\xbb\xbf")
    with target.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][-2:] == ["name", "ltv"] and len(rows) == 4
    assert [NAME, "12000"] in [r[-2:] for r in rows]
    bad = tsunagu("segments", "export", "nope", "-o", str(tmp_path / "nope.csv"), *auth, check=False)
    assert bad.returncode == 1 and "no segment 'nope'" in bad.stderr
    assert not (tmp_path / "nope.csv").exists() and not (tmp_path / "nope.csv.part").exists()
