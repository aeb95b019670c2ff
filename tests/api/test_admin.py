"""The admin API: lookup, search, OpenAPI, and deleting a person for good (also across a
restart, and across a rebuild of every derived store from the event log)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ..conftest import free_port
from .conftest import new_workspace


def ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    return r.json()


def not_found(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 404, r.text
    err = r.json()["error"]
    assert err["status"] == 404
    assert err["code"] == "not_found"
    return err


def uid(prefix: str = "U") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def get(ws: Any, path: str, **params: Any) -> httpx.Response:
    with ws.client() as c:
        return c.get(path, params=params)


def search(ws: Any, **params: Any) -> dict[str, Any]:
    return ok(get(ws, "/api/v1/people", **params))


def user_ids(people: list[dict[str, Any]]) -> list[str]:
    return [p["identifiers"]["user_id"][0] for p in people]


def settle(ws: Any) -> None:
    """Wait until search sees every person the engine holds.

    Search reads the analytics `people` table, which a read does not always wait for (see
    test_search_sees_a_new_person_on_the_first_read_after_analytics_tailed_its_event); the
    search-semantics tests below wait here first so they test what they mean to.
    """
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        want = ok(get(ws, "/api/v1/workspace"))["people"]
        if len(search(ws, limit=1000)["people"]) == want:
            return
        time.sleep(0.02)
    raise AssertionError("search never caught up with the engine")


def search_all(ws: Any, limit: int, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Follow next_cursor to the end; returns every person and the number of pages."""
    people: list[dict[str, Any]] = []
    cursor = None
    for pages in range(1, 50):
        body = search(ws, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
        assert len(body["people"]) <= limit
        people += body["people"]
        cursor = body["next_cursor"]
        if cursor is None:
            return people, pages
    raise AssertionError("next_cursor never ran out")


# -- lookup, 404s, OpenAPI -----------------------------------------------------------------


def test_lookup_of_an_unknown_identifier_is_404_naming_type_and_value(workspace):
    err = not_found(get(workspace, "/api/v1/people/lookup", type="user_id", value="U-nobody"))
    assert "user_id" in err["message"]
    assert "U-nobody" in err["message"]
    assert err["errors"][0]["field"] == "value"


def test_lookup_with_an_identifier_type_nobody_uses_is_404(workspace):
    assert workspace.ingest("/v1/track", {"userId": "U-1", "event": "e"}).status_code == 200
    not_found(get(workspace, "/api/v1/people/lookup", type="shoe_size", value="U-1"))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/people/p_00000000000000000000"),
        ("GET", "/api/v1/people/p_00000000000000000000/events"),
        ("DELETE", "/api/v1/people/p_00000000000000000000"),
    ],
)
def test_unknown_person_id_is_404_naming_the_id(workspace, method, path):
    with workspace.client() as c:
        err = not_found(c.request(method, path))
    assert "p_00000000000000000000" in err["message"]
    assert err["errors"][0]["field"] == "person_id"


def test_unknown_admin_path_is_a_json_404(workspace):
    with workspace.client() as c:
        err = not_found(c.get("/api/v1/nope"))
    assert "/api/v1/nope" in err["message"]


def test_openapi_lists_every_admin_path_with_its_methods(server):
    spec = ok(httpx.get(f"{server.url}/openapi.json", timeout=10))
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    expected = {
        "/api/v1/workspace": {"get"},
        "/api/v1/people": {"get"},
        "/api/v1/people/lookup": {"get"},
        "/api/v1/people/{person_id}": {"get", "delete"},
        "/api/v1/people/{person_id}/events": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, sorted(paths)
        assert methods <= set(paths[path]), (path, paths[path])
        for method in methods:
            assert paths[path][method]["security"] == [{"apiToken": []}], (path, method)
    assert spec["components"]["securitySchemes"]["apiToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["apiToken"]["description"],
    }
    events_params = {p["name"] for p in paths["/api/v1/people/{person_id}/events"]["get"]["parameters"]}
    assert {"limit", "cursor", "event", "channel", "type"} <= events_params
    search_params = {p["name"] for p in paths["/api/v1/people"]["get"]["parameters"]}
    assert {"q", "trait", "value", "limit", "cursor"} <= search_params


def test_health_needs_no_credentials(server):
    body = ok(httpx.get(f"{server.url}/health", timeout=10))
    assert body["status"] == "ok"
    assert body["version"]


def test_workspace_endpoint_names_the_token_workspace_and_counts_people(workspace):
    for i in range(3):
        assert workspace.ingest("/v1/track", {"userId": f"U-{i}", "event": "e"}).status_code == 200
    body = ok(get(workspace, "/api/v1/workspace"))
    assert body["workspace"] == workspace.name
    assert body["people"] == 3
    assert body["events_accepted_since_start"] == 3
    assert body["config"]["unique_identifiers"] == ["user_id"]


def test_person_by_id_has_every_documented_field(workspace):
    assert workspace.ingest("/v1/identify", {"userId": "U-1", "traits": {"name": "Sato"}}).status_code == 200
    pid = workspace.person("user_id", "U-1")["person_id"]
    person = ok(get(workspace, f"/api/v1/people/{pid}"))
    assert set(person) == {
        "person_id", "identifiers", "traits", "first_seen", "last_seen", "channels", "stores",
        "event_count", "merged_ids", "conflicts", "segments", "computed",
    }  # fmt: skip
    assert person["person_id"] == pid
    assert person["first_seen"].endswith("Z")


# -- search -------------------------------------------------------------------------------

MEMBERS = [
    ("U-1", {"name": "佐藤 花子", "city": "東京都渋谷区", "member_rank": "gold", "email": "Hanako@Example.jp"}),
    ("U-10", {"name": "鈴木 一郎", "city": "大阪市北区", "member_rank": "silver"}),
    ("U-11", {"name": "田中 美咲", "city": "東京都新宿区", "member_rank": "gold"}),
    ("U-2", {"name": "Taro Yamada", "city": "Kyoto", "member_rank": "bronze", "points": 120}),
    ("U-3", {"name": "ヤマダ タロウ", "note": "100%_natural"}),
]


@pytest.fixture
def members(workspace):
    batch = [
        {"type": "identify", "userId": user, "traits": traits, "timestamp": f"2024-05-01T09:00:{i:02d}Z"}
        for i, (user, traits) in enumerate(MEMBERS)
    ]
    assert workspace.ingest("/v1/batch", {"batch": batch}).status_code == 200
    settle(workspace)
    return workspace


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "東京"}, {"U-1", "U-11"}),
        ({"q": "渋谷"}, {"U-1"}),
        ({"q": "ヤマダ"}, {"U-3"}),
        ({"q": "yamada"}, {"U-2"}),  # case-insensitive
        ({"q": "hanako@example.JP"}, {"U-1"}),  # an email identifier, any case
        ({"q": "U-2"}, {"U-2"}),  # an identifier value
        ({"q": "100%"}, {"U-3"}),  # LIKE wildcards are literal
        ({"q": "_natural"}, {"U-3"}),
        ({"q": "%"}, {"U-3"}),
        ({"q": "nobody-has-this"}, set()),
        ({"trait": "member_rank", "value": "gold"}, {"U-1", "U-11"}),
        ({"trait": "member_rank", "value": "GOLD"}, set()),  # exact
        ({"trait": "member_rank"}, {"U-1", "U-10", "U-11", "U-2"}),
        ({"trait": "points", "value": "120"}, {"U-2"}),
        ({"trait": "city", "value": "東京都新宿区"}, {"U-11"}),
        ({"q": "東京", "trait": "member_rank", "value": "gold"}, {"U-1", "U-11"}),
        ({"q": "大阪", "trait": "member_rank", "value": "gold"}, set()),
        ({}, {"U-1", "U-10", "U-11", "U-2", "U-3"}),
    ],
)
def test_people_search_by_text_identifier_and_trait(members, params, expected):
    people = search(members, **params)["people"]
    found = user_ids(people)
    assert len(found) == len(set(found))
    assert set(found) == expected


AWKWARD = ["\\", "a\\b", 'a"b', '\\"', "'", "$", "$.a", "a[0]", "[", "*", "/", "a/b", "~", "~0", "~1", "a.b", "😀",
           "\x00", " ", "%", "_", "?(@)", "\n"]  # fmt: skip


def test_search_by_a_trait_named_with_any_characters_finds_whoever_has_it(workspace):
    user = uid()
    traits = {name: f"v{i}" for i, name in enumerate(AWKWARD)}
    assert workspace.ingest("/v1/identify", {"userId": user, "traits": traits}).status_code == 200
    settle(workspace)
    for i, name in enumerate(AWKWARD):
        assert user_ids(search(workspace, trait=name)["people"]) == [user], repr(name)
        assert user_ids(search(workspace, trait=name, value=f"v{i}")["people"]) == [user], repr(name)
        assert search(workspace, trait=name, value="other")["people"] == [], repr(name)
        assert search(workspace, q=name, limit=1)["people"] is not None  # any text is searchable


def test_search_by_an_exact_identifier_puts_that_person_first_then_text_matches(members):
    found = user_ids(search(members, q="U-1")["people"])
    assert found[0] == "U-1"
    assert set(found) == {"U-1", "U-10", "U-11"}


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_search_paging_with_an_exact_match_first_covers_every_match_once(members, limit):
    people, pages = search_all(members, limit, q="U-1")
    found = user_ids(people)
    assert found[0] == "U-1"
    assert sorted(found) == ["U-1", "U-10", "U-11"]
    assert pages == -(-3 // limit)


def test_search_paging_with_next_cursor_returns_everyone_exactly_once_most_recent_first(workspace):
    batch = [
        {
            "type": "identify",
            "userId": f"M-{i:02d}",
            "traits": {"shop": "渋谷店"},
            "timestamp": f"2024-05-01T10:{i:02d}:00Z",
        }
        for i in range(12)
    ]
    assert workspace.ingest("/v1/batch", {"batch": batch}).status_code == 200
    settle(workspace)
    people, pages = search_all(workspace, 5, q="渋谷店")
    assert pages == 3
    assert user_ids(people) == [f"M-{i:02d}" for i in reversed(range(12))]
    everyone, _ = search_all(workspace, 4)
    assert sorted(user_ids(everyone)) == [f"M-{i:02d}" for i in range(12)]


def test_search_does_not_return_people_merged_away(workspace):
    for path, body in [
        ("/v1/track", {"userId": "U-1", "event": "login", "timestamp": "2024-05-01T09:00:00Z"}),
        ("/v1/track", {"anonymousId": "a-1", "event": "view", "timestamp": "2024-05-01T09:00:01Z"}),
        ("/v1/identify", {"userId": "U-1", "anonymousId": "a-1", "traits": {"city": "札幌"}}),
    ]:
        assert workspace.ingest(path, body).status_code == 200
    settle(workspace)
    people = search(workspace)["people"]
    assert len(people) == 1
    assert people[0]["identifiers"] == {"user_id": ["U-1"], "anonymous_id": ["a-1"]}
    assert user_ids(search(workspace, q="a-1")["people"]) == ["U-1"]
    assert user_ids(search(workspace, q="札幌")["people"]) == ["U-1"]


def test_search_sees_a_new_person_on_the_first_read_after_analytics_tailed_its_event(workspace):
    misses = []
    for i in range(14):
        tag = uuid.uuid4().hex[:10]
        assert workspace.ingest("/v1/identify", {"userId": f"R-{i}", "traits": {"tag": tag}}).status_code == 200
        time.sleep(0.15)  # longer than the analytics tail interval (0.1 s): the record is written
        if len(search(workspace, q=tag)["people"]) != 1:
            misses.append(i)
    assert misses == []


# -- deleting a person ----------------------------------------------------------------------


def _victim_and_bystander(ws: Any) -> dict[str, Any]:
    """A member with a merged anonymous history, an email and a store purchase, and a
    bystander whose events share log records (one request each) with the member's."""
    victim, bystander = uid("victim"), uid("bystander")
    anon, email = uid("anon"), f"{uid('mail').lower()}@example.jp"
    requests = [
        ("/v1/track", {"userId": victim, "event": "login", "timestamp": "2024-05-01T09:00:00Z"}),
        ("/v1/page", {"anonymousId": anon, "name": "Top", "timestamp": "2024-05-01T09:00:01Z"}),
        (
            "/v1/batch",
            {
                "batch": [
                    {"type": "track", "anonymousId": anon, "event": "view", "timestamp": "2024-05-01T09:00:02Z"},
                    {"type": "track", "userId": bystander, "event": "view", "timestamp": "2024-05-01T09:00:02Z"},
                ]
            },
        ),
        (
            "/v1/batch",
            {
                "batch": [
                    {
                        "type": "identify",
                        "userId": victim,
                        "anonymousId": anon,
                        "traits": {"email": email.upper(), "name": "消される人"},
                        "timestamp": "2024-05-01T09:00:03Z",
                    },
                    {"type": "identify", "userId": bystander, "traits": {"name": "残る人"}},
                    {
                        "type": "track",
                        "userId": victim,
                        "event": "Order Completed",
                        "context": {"channel": "store", "store_id": "S-1"},
                        "timestamp": "2024-05-01T09:00:04Z",
                    },
                ]
            },
        ),
        ("/v1/track", {"userId": bystander, "event": "buy"}),
    ]
    for path, body in requests:
        assert ws.ingest(path, body).status_code == 200
    person = ws.person("user_id", victim)
    anon_person = person["merged_ids"][0]
    other = ws.person("user_id", bystander)
    return {
        "victim": victim,
        "bystander": bystander,
        "anon": anon,
        "email": email,
        "person": person,
        "anon_person": anon_person,
        "other": other,
        "other_events": ws.timeline(other["person_id"]),
    }


def _assert_victim_gone_and_bystander_intact(ws: Any, s: dict[str, Any]) -> None:
    with ws.client() as c:
        for typ, value in [("user_id", s["victim"]), ("anonymous_id", s["anon"]), ("email", s["email"])]:
            not_found(c.get("/api/v1/people/lookup", params={"type": typ, "value": value}))
        for pid in (s["person"]["person_id"], s["anon_person"]):
            not_found(c.get(f"/api/v1/people/{pid}"))
            not_found(c.get(f"/api/v1/people/{pid}/events"))
            not_found(c.delete(f"/api/v1/people/{pid}"))
        for q in (s["victim"], s["anon"], s["email"], "消される人"):
            assert ok(c.get("/api/v1/people", params={"q": q}))["people"] == [], q
        everyone = ok(c.get("/api/v1/people", params={"limit": 1000}))["people"]
    assert [p["person_id"] for p in everyone] == [s["other"]["person_id"]]
    other = ws.person("user_id", s["bystander"])
    assert other == s["other"]
    assert ws.timeline(other["person_id"]) == s["other_events"]


def test_delete_person_says_what_was_deleted_and_leaves_nothing_behind(workspace):
    s = _victim_and_bystander(workspace)
    with workspace.client() as c:
        body = ok(c.delete(f"/api/v1/people/{s['person']['person_id']}"))
    assert body["deleted"] is True
    assert body["person_id"] == s["person"]["person_id"]
    assert sorted(body["person_ids"]) == sorted([s["person"]["person_id"], s["anon_person"]])
    assert body["identifiers"] == 3  # user_id, anonymous_id, email
    assert body["events"] == 5  # login, Top, view, identify, Order Completed
    assert body["timeline_entries"] == 6  # and the merge entry
    assert body["log_records_rewritten"] == 4  # every request but the bystander's own
    _assert_victim_gone_and_bystander_intact(workspace, s)
    assert ok(get(workspace, "/api/v1/workspace"))["people"] == 1


def test_deleting_by_a_merged_away_person_id_deletes_the_whole_person(workspace):
    s = _victim_and_bystander(workspace)
    with workspace.client() as c:
        body = ok(c.delete(f"/api/v1/people/{s['anon_person']}"))
    assert body["person_id"] == s["person"]["person_id"]
    _assert_victim_gone_and_bystander_intact(workspace, s)


def test_a_deleted_person_coming_back_starts_a_fresh_person_without_the_old_history(workspace):
    s = _victim_and_bystander(workspace)
    with workspace.client() as c:
        ok(c.delete(f"/api/v1/people/{s['person']['person_id']}"))
    assert workspace.ingest("/v1/track", {"userId": s["victim"], "event": "login-again"}).status_code == 200
    person = workspace.person("user_id", s["victim"])
    assert person["person_id"] != s["person"]["person_id"]
    assert person["identifiers"] == {"user_id": [s["victim"]]}
    assert person["traits"] == {}
    assert person["stores"] == {}
    assert [e["event"] for e in workspace.timeline(person["person_id"])] == ["login-again"]


@pytest.fixture(scope="module")
def restartable(server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A second server of the same kind for the restart tests, holding few workspaces, so a
    restart (which closes and reopens every workspace) stays quick and leaves `server` alone."""
    own = type(server)(tmp_path_factory.mktemp("restartable"), free_port())
    own.start()
    yield own
    own.stop()


@pytest.fixture
def restart_workspace(restartable: Any) -> Any:
    return new_workspace(restartable)


def test_deleted_person_stays_deleted_after_a_server_restart(restartable, restart_workspace):
    server, workspace = restartable, restart_workspace
    s = _victim_and_bystander(workspace)
    with workspace.client() as c:
        ok(c.delete(f"/api/v1/people/{s['person']['person_id']}"))
    server.stop()
    server.start()
    _assert_victim_gone_and_bystander_intact(workspace, s)
    # The restarted server still ingests into the surviving person.
    assert workspace.ingest("/v1/track", {"userId": s["bystander"], "event": "after-restart"}).status_code == 200
    assert workspace.person("user_id", s["bystander"])["event_count"] == s["other"]["event_count"] + 1


def test_deleted_person_stays_deleted_when_every_derived_store_is_rebuilt_from_the_log(restartable, restart_workspace):
    server, workspace = restartable, restart_workspace
    s = _victim_and_bystander(workspace)
    with workspace.client() as c:
        ok(c.delete(f"/api/v1/people/{s['person']['person_id']}"))
    server.stop()
    # Only the event log is the source of truth: drop the checkpoints and the analytics
    # store so the restart replays the whole (rewritten) log.
    ws_dir = server.data_dir / "workspaces" / workspace.name
    removed = []
    for pattern in ("state.sqlite*", "analytics.duckdb*"):
        for f in ws_dir.glob(pattern):
            f.unlink()
            removed.append(f.name)
    assert "state.sqlite" in removed
    assert "analytics.duckdb" in removed
    server.start()
    _assert_victim_gone_and_bystander_intact(workspace, s)
