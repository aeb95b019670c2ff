"""`GET /api/v1/quarantine`: what a workspace set aside, for its admins only."""

from __future__ import annotations

from typing import Any

from tsunagu.storage.sqlite_quarantine import SqliteQuarantine

from .conftest import new_workspace


def _set_aside(server: Any, ws: Any, entries: list[dict[str, Any]]) -> None:
    """Entries as the pipeline writes them (nothing a client can send makes one now)."""
    q = SqliteQuarantine(server.data_dir / "workspaces" / ws.name / "quarantine.sqlite")
    for e in entries:
        q.add(e.pop("source"), e.pop("ref"), at=1_790_000_000_000, **e)
    q.close()


def test_the_quarantine_lists_entries_newest_first_by_source_and_in_pages(server: Any) -> None:
    ws = new_workspace(server)
    assert ws.ingest("/v1/track", {"userId": "Q-1", "event": "view"}).status_code == 200
    pid = ws.person("user_id", "Q-1")["person_id"]
    _set_aside(server, ws, [
        {"source": "engine", "ref": "q-1", "reason": "ZeroDivisionError()", "message_id": "m-1", "person_id": pid,
         "body": b'{"event": "buy"}'},
        {"source": "analytics", "ref": "q-2", "reason": "events: Conversion Error", "seq": 3, "body": b'{"s": "\xff"}'},
        {"source": "analytics", "ref": "q-3", "reason": "people: Conversion Error", "seq": 4},
    ])  # fmt: skip
    with ws.client() as c:
        body = c.get("/api/v1/quarantine").json()
        assert body["counts"] == {"engine": 1, "analytics": 2}
        assert [e["ref"] for e in body["entries"]] == ["q-3", "q-2", "q-1"]
        assert body["entries"][1]["body"] == '{"s": "\ufffd"}'  # invalid UTF-8, shown, not a 500
        assert body["entries"][2]["person_id"] == pid and body["entries"][2]["at"].endswith("Z")
        first = c.get("/api/v1/quarantine", params={"limit": 2}).json()
        assert [e["ref"] for e in first["entries"]] == ["q-3", "q-2"] and first["next_before"]
        rest = c.get("/api/v1/quarantine", params={"limit": 2, "before": first["next_before"]}).json()
        assert [e["ref"] for e in rest["entries"]] == ["q-1"] and rest["next_before"] is None
        only = c.get("/api/v1/quarantine", params={"source": "engine"}).json()
        assert [e["ref"] for e in only["entries"]] == ["q-1"]
        assert c.get("/api/v1/quarantine", params={"source": "nope"}).status_code == 400
        assert c.get("/api/v1/workspace").json()["set_aside"] == {"engine": 1, "analytics": 2}
        # forgetting the person removes what was set aside about them
        assert c.delete(f"/api/v1/people/{pid}").status_code == 200
        assert [e["ref"] for e in c.get("/api/v1/quarantine").json()["entries"]] == ["q-3", "q-2"]


def test_the_quarantine_is_the_workspaces_own_and_needs_its_token(server: Any) -> None:
    ws, other = new_workspace(server), new_workspace(server)
    assert ws.ingest("/v1/track", {"userId": "Q-2", "event": "view"}).status_code == 200
    assert other.ingest("/v1/track", {"userId": "Q-2", "event": "view"}).status_code == 200
    _set_aside(server, ws, [{"source": "engine", "ref": "q-9", "reason": "x"}])
    with other.client() as c:
        assert c.get("/api/v1/quarantine").json() == {"counts": {}, "entries": [], "next_before": None}
    import httpx

    r = httpx.get(f"{ws.url}/api/v1/quarantine", timeout=10)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
