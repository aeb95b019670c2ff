"""Segment reports over the admin API: days in Tokyo, sizes through a merge, overlap, members, CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..clocked import GOLD, NAME, ClockedServer, identify, jst, tell_story
from ..conftest import Workspace


@pytest.fixture(scope="module")
def clocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockedServer]:
    srv = ClockedServer(tmp_path_factory.mktemp("clocked"), jst(2026, 3, 1, 9, 0)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def story(clocked: ClockedServer) -> Workspace:
    return tell_story(clocked)


def _get(ws: Workspace, path: str, **params: Any) -> httpx.Response:
    with ws.client() as c:
        return c.get(path, params=params or None)  # params={} would drop a query in the path


def test_report_counts_entries_exits_and_size_per_tokyo_day(story: Workspace) -> None:
    r = _get(story, "/api/v1/segments/gold/report", days=6)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["segment"] == "gold" and body["size"] == 3 and body["timezone"] == "Asia/Tokyo"
    got = [(d["day"], d["entries"], d["exits"], d["size"]) for d in body["days"]]
    assert got == [
        ("2026-02-28", 0, 0, 0),
        ("2026-03-01", 0, 0, 0),
        ("2026-03-02", 2, 0, 2),
        ("2026-03-03", 1, 1, 2),
        ("2026-03-04", 0, 0, 2),
        ("2026-03-05", 2, 1, 3),
    ]


def test_report_counts_a_merged_person_once(story: Workspace) -> None:
    # The visitor and U6 both entered; once they are one person, that person counted
    # once on every day (a running sum of entries minus exits would say 3, then 5).
    days = _get(story, "/api/v1/segments/buyers/report", days=4).json()["days"]
    assert [(d["day"], d["entries"], d["exits"], d["size"]) for d in days] == [
        ("2026-03-02", 1, 0, 1),
        ("2026-03-03", 2, 0, 2),
        ("2026-03-04", 0, 0, 2),
        ("2026-03-05", 2, 0, 4),
    ]
    assert _get(story, "/api/v1/segments/buyers/report").json()["size"] == 4


def test_report_defaults_to_30_days_and_refuses_a_bad_window(story: Workspace) -> None:
    days = _get(story, "/api/v1/segments/gold/report").json()["days"]
    assert len(days) == 30 and days[-1]["day"] == "2026-03-05" and days[0]["day"] == "2026-02-04"
    r = _get(story, "/api/v1/segments/gold/report", days=0)
    assert r.status_code == 400 and r.json()["error"]["errors"][0]["field"] == "days"


def test_overlap_of_two_segments_now(story: Workspace) -> None:
    r = _get(story, "/api/v1/segments/overlap", a="gold", b="buyers")
    assert r.status_code == 200, r.text
    # gold: U1 U3 U4; buyers: U1 U3 U5 U6
    assert r.json() == {"a": 3, "b": 4, "both": 2, "only_a": 1, "only_b": 2, "jaccard": 0.4}
    same = _get(story, "/api/v1/segments/overlap", a="gold", b="gold").json()
    assert same["both"] == 3 and same["jaccard"] == 1.0


def test_members_are_paged_in_person_id_order_with_when_they_entered(story: Workspace) -> None:
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        r = _get(story, "/api/v1/segments/gold/members", limit=2, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["size"] == 3
        seen += body["members"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 2
    ids = [m["person_id"] for m in seen]
    assert ids == sorted(ids)
    by_uid = {m["identifiers"]["user_id"][0]: m for m in seen}
    assert set(by_uid) == {"U1", "U3", "U4"}
    # U1's current stay began on 03-05 12:00 Tokyo (03:00 UTC), not at the first entry
    assert by_uid["U1"]["entered_at"] == "2026-03-05T03:00:00.000Z"
    assert by_uid["U3"]["entered_at"] == "2026-03-02T23:30:00.000Z"
    assert by_uid["U1"]["traits"]["name"] == NAME
    r = _get(story, "/api/v1/segments/gold/members", cursor="not-a-cursor")
    assert r.status_code == 400 and r.json()["error"]["errors"][0]["field"] == "cursor"


def _csv(ws: Workspace, name: str, **params: Any) -> tuple[httpx.Response, list[list[str]]]:
    r = _get(ws, f"/api/v1/segments/{name}/members.csv", **params)
    assert r.status_code == 200, r.text
    return r, list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))


def test_members_csv_has_a_bom_a_header_and_escapes_japanese_text(story: Workspace) -> None:
    r, rows = _csv(story, "gold", traits="name,rank", computed="ltv")
    assert r.content.startswith(b"\xef\xbb\xbf")  # Excel in Japan reads UTF-8 only with the BOM
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="segment-gold.csv"'
    zoned = [f"{c} (Asia/Tokyo)" for c in ("first_seen", "last_seen", "entered_at")]
    assert rows[0] == ["person_id", "user_id", "email", *zoned, "name", "rank", "ltv"]  # times name their zone
    assert len(rows) == 4
    u1 = next(row for row in rows if row[1] == "U1")
    assert u1[2] == "u1@example.jp"
    assert u1[3] == "2026-03-02 10:00:00" and u1[4] == "2026-03-05 12:00:00" and u1[5] == "2026-03-05 12:00:00"
    assert u1[6] == NAME and u1[7] == "gold" and u1[8] == "12000"
    assert '"佐藤, ""美咲""\n二行目"' in r.content.decode("utf-8-sig")  # quoted, quotes doubled
    assert [row[0] for row in rows[1:]] == sorted(row[0] for row in rows[1:])


def test_members_csv_refuses_an_unknown_computed_trait_before_streaming(story: Workspace) -> None:
    r = _get(story, "/api/v1/segments/gold/members.csv", computed="ltv,nope")
    assert r.status_code == 400
    err = r.json()["error"]["errors"][0]
    assert err["field"] == "computed" and "'nope'" in err["reason"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/segments/nope/report", "name"),
        ("/api/v1/segments/nope/members", "name"),
        ("/api/v1/segments/nope/members.csv", "name"),
        ("/api/v1/segments/overlap?a=gold&b=nope", "b"),
    ],
)
def test_an_unknown_segment_is_a_structured_404(story: Workspace, path: str, field: str) -> None:
    r = _get(story, path)
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "not_found" and error["errors"][0]["field"] == field and "'nope'" in error["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/segments/gold/report",
        "/api/v1/segments/gold/members",
        "/api/v1/segments/gold/members.csv",
        "/api/v1/segments/overlap?a=gold&b=buyers",
    ],
)
def test_every_report_needs_the_api_token(story: Workspace, path: str) -> None:
    assert httpx.get(story.url + path).status_code == 401
    assert httpx.get(story.url + path, headers={"Authorization": f"Bearer {story.write_key}"}).status_code == 401


def test_another_workspace_sees_only_its_own_segment(clocked: ClockedServer, story: Workspace) -> None:
    other = clocked.create_workspace()
    assert _get(other, "/api/v1/segments/gold/report").status_code == 404
    clocked.define_segment(other, "gold", GOLD)
    identify(other, "X1", rank="gold")
    body = _get(other, "/api/v1/segments/gold/report", days=1).json()
    want = {"day": "2026-03-05", "source": "live", "entries": 1, "exits": 0, "size": 1}
    assert body["size"] == 1 and body["days"] == [want]
    members = _get(other, "/api/v1/segments/gold/members").json()["members"]
    assert [m["identifiers"]["user_id"] for m in members] == [["X1"]]
    _, rows = _csv(other, "gold")
    assert [row[1] for row in rows[1:]] == ["X1"]


def test_a_large_segment_streams_in_chunks(clocked: ClockedServer, tmp_path: Path) -> None:
    ws = clocked.create_workspace()
    clocked.define_segment(ws, "gold", GOLD)
    n = 4500  # more than two chunks of rows
    for start in range(0, n, 500):
        batch = [
            {"type": "identify", "userId": f"L{i:05d}", "traits": {"rank": "gold"}} for i in range(start, start + 500)
        ]
        assert ws.ingest("/v1/batch", {"batch": batch}).status_code == 200
    chunks = 0
    with ws.client() as c, c.stream("GET", "/api/v1/segments/gold/members.csv") as r:
        assert r.status_code == 200
        assert "content-length" not in r.headers  # streamed, not built first
        out = tmp_path / "gold.csv"
        with out.open("wb") as f:
            for chunk in r.iter_raw():
                chunks += 1
                f.write(chunk)
    rows = list(csv.reader(io.StringIO(out.read_text("utf-8-sig"), newline="")))
    assert len(rows) == n + 1 and len({row[0] for row in rows[1:]}) == n
    assert sorted(row[1] for row in rows[1:]) == [f"L{i:05d}" for i in range(n)]
    assert chunks >= 3
