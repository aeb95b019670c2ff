"""Workspaces are sealed from each other: a token or write key opens its own workspace only,
and a write key opens no admin endpoint at all."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest


def settle(ws: Any) -> None:
    """Wait until search sees every person the engine holds (search may lag a read behind:
    see test_admin.py::test_search_sees_a_new_person_on_the_first_read_after_analytics_tailed_its_event)."""
    with ws.client() as c:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            want = c.get("/api/v1/workspace").json()["people"]
            if len(c.get("/api/v1/people", params={"limit": 1000}).json()["people"]) == want:
                return
            time.sleep(0.02)
    raise AssertionError("search never caught up with the engine")


def _make_pair(make_workspace: Any) -> tuple[Any, Any]:
    """Two workspaces, A and B, each holding a person with the same user id `U-shared`
    and the same email, with different traits."""
    a, b = make_workspace(), make_workspace()
    for ws, rank in ((a, "gold"), (b, "platinum")):
        r = ws.ingest(
            "/v1/batch",
            {
                "batch": [
                    {
                        "type": "identify",
                        "userId": "U-shared",
                        "messageId": "m-" + uuid.uuid4().hex,
                        "traits": {"email": "same@example.jp", "rank": rank, "ws": ws.name},
                    },
                    {"type": "track", "userId": "U-shared", "event": f"only-in-{ws.name}"},
                ]
            },
        )
        assert r.status_code == 200, r.text
    for ws in (a, b):
        settle(ws)
    return a, b


@pytest.fixture(scope="module")
def pair(make_workspace: Any) -> tuple[Any, Any]:
    """For tests that change nothing (every attempt of theirs is refused)."""
    return _make_pair(make_workspace)


@pytest.fixture
def fresh_pair(make_workspace: Any) -> tuple[Any, Any]:
    """For tests that add or delete people."""
    return _make_pair(make_workspace)


def test_same_user_id_in_two_workspaces_is_two_separate_people(pair):
    a, b = pair
    pa, pb = a.person("user_id", "U-shared"), b.person("user_id", "U-shared")
    assert pa["person_id"] != pb["person_id"]
    assert (pa["traits"]["rank"], pb["traits"]["rank"]) == ("gold", "platinum")
    assert pa["event_count"] == pb["event_count"] == 2
    assert {e["event"] for e in a.timeline(pa["person_id"])} == {None, f"only-in-{a.name}"}
    assert {e["event"] for e in b.timeline(pb["person_id"])} == {None, f"only-in-{b.name}"}


def test_the_same_message_id_is_accepted_in_each_workspace(make_workspace):
    # De-duplication is per workspace: one source fanning out to two workspaces is normal.
    a, b = make_workspace(), make_workspace()
    mid = "m-" + uuid.uuid4().hex
    for ws, user in ((a, "U-a"), (b, "U-b")):
        for _ in range(2):
            assert ws.ingest("/v1/track", {"userId": user, "event": "buy", "messageId": mid}).status_code == 200
        [entry] = ws.timeline(ws.person("user_id", user)["person_id"])
        assert entry["message_id"] == mid


def test_person_ids_are_not_shared_between_workspaces_even_for_the_same_message(make_workspace):
    a, b = make_workspace(), make_workspace()
    mid = "m-" + uuid.uuid4().hex
    for ws in (a, b):
        assert ws.ingest("/v1/identify", {"userId": "U-fanout", "messageId": mid}).status_code == 200
    pa, pb = a.person("user_id", "U-fanout"), b.person("user_id", "U-fanout")
    with a.client() as c:
        # A deletion meant for B's person, sent with A's token, must not find anything in A.
        status = c.delete(f"/api/v1/people/{pb['person_id']}").status_code
    assert pa["person_id"] != pb["person_id"]
    assert status == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/people/{pid}"),
        ("GET", "/api/v1/people/{pid}/events"),
        ("DELETE", "/api/v1/people/{pid}"),
    ],
)
def test_a_token_cannot_reach_another_workspaces_person_by_id(pair, method, path):
    a, b = pair
    pb = b.person("user_id", "U-shared")
    with a.client() as c:
        r = c.request(method, path.format(pid=pb["person_id"]))
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"
    # B's person is untouched, whatever A tried.
    assert b.person("user_id", "U-shared") == pb
    assert len(b.timeline(pb["person_id"])) == 2


def test_lookup_and_search_only_see_the_tokens_own_workspace(pair, make_workspace):
    a, b = pair
    c_ws = make_workspace()
    assert c_ws.ingest("/v1/identify", {"userId": "U-only-in-c", "traits": {"city": "那覇"}}).status_code == 200
    settle(c_ws)
    for ws in (a, b):
        with ws.client() as c:
            r = c.get("/api/v1/people/lookup", params={"type": "user_id", "value": "U-only-in-c"})
            assert r.status_code == 404
            for params in ({"q": "U-only-in-c"}, {"q": "那覇"}, {"trait": "city", "value": "那覇"}):
                assert c.get("/api/v1/people", params=params).json()["people"] == []
            for params in ({}, {"q": "same@example.jp"}, {"q": "U-shared"}, {"trait": "rank"}):
                people = c.get("/api/v1/people", params=params).json()["people"]
                assert len(people) == 1, params
                assert people[0]["traits"]["ws"] == ws.name
            assert (
                c.get("/api/v1/people", params={"trait": "rank", "value": "platinum" if ws is a else "gold"}).json()[
                    "people"
                ]
                == []
            )
            assert c.get("/api/v1/workspace").json()["workspace"] == ws.name


def test_events_sent_with_one_write_key_never_appear_in_the_other_workspace(fresh_pair):
    a, b = fresh_pair
    assert a.ingest("/v1/track", {"userId": "U-a-only", "event": "secret"}).status_code == 200
    assert a.ingest("/v1/track", {"userId": "U-shared", "event": "secret"}).status_code == 200
    with b.client() as c:
        assert c.get("/api/v1/people/lookup", params={"type": "user_id", "value": "U-a-only"}).status_code == 404
        pb = b.person("user_id", "U-shared")
        assert c.get(f"/api/v1/people/{pb['person_id']}/events", params={"event": "secret"}).json()["events"] == []
        assert c.get("/api/v1/workspace").json()["people"] == 1
    assert len(a.timeline(a.person("user_id", "U-shared")["person_id"], event="secret")) == 1


def test_a_write_key_in_the_body_cannot_override_the_basic_auth_workspace(fresh_pair):
    a, b = fresh_pair
    r = httpx.post(
        f"{a.url}/v1/track",
        json={"writeKey": b.write_key, "userId": "U-which", "event": "e"},
        auth=(a.write_key, ""),
        timeout=30,
    )
    assert r.status_code == 200
    a.person("user_id", "U-which")
    with b.client() as c:
        assert c.get("/api/v1/people/lookup", params={"type": "user_id", "value": "U-which"}).status_code == 404


def test_deleting_in_one_workspace_leaves_the_same_user_in_the_other(fresh_pair):
    a, b = fresh_pair
    pa, pb = a.person("user_id", "U-shared"), b.person("user_id", "U-shared")
    with a.client() as c:
        assert c.delete(f"/api/v1/people/{pa['person_id']}").status_code == 200
        assert c.get("/api/v1/people/lookup", params={"type": "user_id", "value": "U-shared"}).status_code == 404
    assert b.person("user_id", "U-shared") == pb
    assert len(b.timeline(pb["person_id"])) == 2


ADMIN_REQUESTS = [
    ("GET", "/api/v1/workspace", {}),
    ("GET", "/api/v1/people", {}),
    ("GET", "/api/v1/people", {"q": "U-shared"}),
    ("GET", "/api/v1/people/lookup", {"type": "user_id", "value": "U-shared"}),
    ("GET", "/api/v1/people/{pid}", {}),
    ("GET", "/api/v1/people/{pid}/events", {}),
    ("DELETE", "/api/v1/people/{pid}", {}),
]


@pytest.mark.parametrize("scheme", ["Bearer", "Basic"])
@pytest.mark.parametrize(("method", "path", "params"), ADMIN_REQUESTS, ids=[f"{m} {p}" for m, p, _ in ADMIN_REQUESTS])
def test_a_write_key_opens_no_admin_endpoint(pair, method, path, params, scheme):
    a, _ = pair
    pa = a.person("user_id", "U-shared")
    if scheme == "Bearer":
        auth = {"headers": {"Authorization": f"Bearer {a.write_key}"}}
    else:
        auth = {"auth": (a.write_key, "")}
    r = httpx.request(method, f"{a.url}{path.format(pid=pa['person_id'])}", params=params, timeout=30, **auth)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"
    assert a.person("user_id", "U-shared") == pa  # the DELETE did nothing


def test_an_api_token_cannot_send_events(pair):
    a, _ = pair
    for auth in ({"auth": (a.api_token, "")}, {"headers": {"Authorization": f"Bearer {a.api_token}"}}):
        r = httpx.post(f"{a.url}/v1/track", json={"userId": "U-token", "event": "e"}, timeout=30, **auth)
        assert r.status_code == 401, r.text
    r = httpx.post(f"{a.url}/v1/track", json={"writeKey": a.api_token, "userId": "U-token", "event": "e"}, timeout=30)
    assert r.status_code == 401, r.text
    with a.client() as c:
        assert c.get("/api/v1/people/lookup", params={"type": "user_id", "value": "U-token"}).status_code == 404
