"""The Segment-spec ingest endpoints, end to end against a real `tsunagu serve`.

Every test posts over HTTP and checks what the admin API shows afterwards: the person
(identifiers, traits, channels, stores, conflicts) and the timeline.
"""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ..conftest import free_port
from .conftest import new_workspace


@pytest.fixture
def workspace(shared_workspace: Any) -> Any:
    """Every test here keeps to its own uuid user ids, so one workspace serves the module."""
    return shared_workspace


# A fixed instant in the past: events sent with `timestamp` and no `sentAt` keep it as is.
T0 = datetime(2024, 5, 1, 9, 0, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    """An ISO-8601 timestamp `seconds` after T0."""
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True, body
    return body


def uid(prefix: str = "U") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def raw_post(workspace: Any, path: str, content: bytes, headers: dict[str, str] | None = None, auth: bool = True):
    return httpx.post(
        f"{workspace.url}{path}",
        content=content,
        headers=headers or {},
        auth=(workspace.write_key, "") if auth else None,
        timeout=30,
    )


# -- every single-message endpoint, long and short path ---------------------------------

SINGLE_ENDPOINTS = [
    ("/v1/track", "track", {"event": "view", "properties": {"sku": "A1"}}, "view"),
    ("/v1/t", "track", {"event": "cart", "properties": {"sku": "A1"}}, "cart"),
    ("/v1/identify", "identify", {"traits": {"name": "Sato"}}, None),
    ("/v1/i", "identify", {"traits": {"name": "Sato"}}, None),
    ("/v1/page", "page", {"name": "Home", "properties": {"url": "https://shop.example/"}}, "Home"),
    ("/v1/p", "page", {"name": "Home"}, "Home"),
    ("/v1/screen", "screen", {"name": "Cart"}, "Cart"),
    ("/v1/s", "screen", {"name": "Cart"}, "Cart"),
    ("/v1/group", "group", {"groupId": "G-1", "traits": {"plan": "b2b"}}, None),
    ("/v1/g", "group", {"groupId": "G-1"}, None),
]


@pytest.mark.parametrize(("path", "kind", "fields", "name"), SINGLE_ENDPOINTS, ids=[e[0] for e in SINGLE_ENDPOINTS])
def test_each_single_message_endpoint_is_accepted_and_shows_on_the_timeline_with_its_type(
    workspace, path, kind, fields, name
):
    user = uid()
    ok(workspace.ingest(path, {"userId": user, **fields}))
    person = workspace.person("user_id", user)
    [entry] = workspace.timeline(person["person_id"])
    assert entry["type"] == kind
    assert entry["event"] == name
    assert entry["user_id"] == user
    assert entry["properties"] == fields.get("properties", {})


def test_the_endpoint_decides_the_type_even_if_the_body_says_otherwise(workspace):
    user = uid()
    ok(workspace.ingest("/v1/page", {"type": "track", "userId": user, "name": "Top", "event": "ignored"}))
    [entry] = workspace.timeline(workspace.person("user_id", user)["person_id"])
    assert (entry["type"], entry["event"], entry["channel"]) == ("page", "Top", "web")


@pytest.mark.parametrize("path", ["/v1/alias", "/v1/a"])
def test_alias_endpoint_links_previous_id_to_user_id_and_is_on_the_timeline(workspace, path):
    anon, user = uid("anon"), uid()
    ok(workspace.ingest("/v1/page", {"anonymousId": anon, "name": "Top", "timestamp": at(1)}))
    ok(workspace.ingest(path, {"previousId": anon, "userId": user, "timestamp": at(2)}))
    ok(workspace.ingest("/v1/track", {"userId": user, "event": "buy", "timestamp": at(3)}))
    by_user = workspace.person("user_id", user)
    by_anon = workspace.person("anonymous_id", anon)
    assert by_user["person_id"] == by_anon["person_id"]
    assert by_user["identifiers"]["user_id"] == [user]
    assert anon in by_user["identifiers"]["anonymous_id"]
    types = [e["type"] for e in workspace.timeline(by_user["person_id"]) if e["type"] != "merge"]
    assert types == ["track", "alias", "page"]


def test_alias_of_two_already_known_people_merges_them_into_one(workspace):
    anon, user = uid("anon"), uid()
    ok(workspace.ingest("/v1/track", {"userId": user, "event": "login", "timestamp": at(1)}))
    ok(workspace.ingest("/v1/track", {"anonymousId": anon, "event": "view", "timestamp": at(2)}))
    before = workspace.person("anonymous_id", anon)["person_id"]
    ok(workspace.ingest("/v1/alias", {"previousId": anon, "userId": user, "timestamp": at(3)}))
    person = workspace.person("user_id", user)
    assert workspace.person("anonymous_id", anon)["person_id"] == person["person_id"]
    assert before in person["merged_ids"]
    events = workspace.timeline(person["person_id"])
    assert [e["type"] for e in events] == ["merge", "alias", "track", "track"]
    assert events[0]["properties"]["merged_person_id"] == before


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/b", "/v1/import"])
def test_batch_paths_accept_several_messages_of_every_type(workspace, path):
    user = uid()
    batch = [
        {"type": "identify", "userId": user, "traits": {"name": "Sato"}, "timestamp": at(1)},
        {"type": "track", "userId": user, "event": "view", "timestamp": at(2)},
        {"type": "page", "userId": user, "name": "Home", "timestamp": at(3)},
        {"type": "screen", "userId": user, "name": "Cart", "timestamp": at(4)},
        {"type": "group", "userId": user, "groupId": "G-1", "timestamp": at(5)},
    ]
    ok(workspace.ingest(path, {"batch": batch}))
    events = workspace.timeline(workspace.person("user_id", user)["person_id"])
    assert [e["type"] for e in events] == ["group", "screen", "page", "track", "identify"]
    assert [parse(e["timestamp"]) for e in events] == [T0 + timedelta(seconds=s) for s in (5, 4, 3, 2, 1)]


# -- wire variants ------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8", None])
def test_body_is_read_as_json_whatever_the_content_type(workspace, content_type):
    user = uid()
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps({"userId": user, "event": "view"}).encode()
    r = raw_post(workspace, "/v1/t", body, headers)
    ok(r)
    assert [e["event"] for e in workspace.timeline(workspace.person("user_id", user)["person_id"])] == ["view"]


def test_write_key_in_the_body_instead_of_basic_auth_on_a_single_endpoint(workspace):
    user = uid()
    body = json.dumps({"writeKey": workspace.write_key, "userId": user, "event": "view"}).encode()
    ok(raw_post(workspace, "/v1/track", body, {"Content-Type": "text/plain"}, auth=False))
    assert workspace.person("user_id", user)["event_count"] == 1


def test_write_key_in_the_body_instead_of_basic_auth_on_batch(workspace):
    user = uid()
    body = {"writeKey": workspace.write_key, "batch": [{"type": "track", "userId": user, "event": "view"}]}
    ok(raw_post(workspace, "/v1/batch", json.dumps(body).encode(), auth=False))
    assert workspace.person("user_id", user)["event_count"] == 1


def test_write_key_as_basic_auth_user_with_a_password_part(workspace):
    user = uid()
    r = httpx.post(
        f"{workspace.url}/v1/track",
        json={"userId": user, "event": "view"},
        auth=(workspace.write_key, "ignored-password"),
    )
    ok(r)
    assert workspace.person("user_id", user)["event_count"] == 1


@pytest.mark.parametrize(
    ("path", "encoding", "compress"),
    [
        ("/v1/track", "gzip", gzip.compress),
        ("/v1/batch", "gzip", gzip.compress),
        ("/v1/batch", "deflate", zlib.compress),
        ("/v1/t", "GZIP", gzip.compress),
    ],
    ids=["track-gzip", "batch-gzip", "batch-deflate", "t-gzip-uppercase"],
)
def test_compressed_bodies_are_inflated(workspace, encoding, compress, path):
    user = uid()
    msg = {"userId": user, "event": "view", "properties": {"note": "圧縮" * 200}}
    body = {"batch": [{"type": "track", **msg}]} if path == "/v1/batch" else msg
    ok(raw_post(workspace, path, compress(json.dumps(body).encode()), {"Content-Encoding": encoding}))
    [entry] = workspace.timeline(workspace.person("user_id", user)["person_id"])
    assert entry["properties"]["note"] == "圧縮" * 200


def test_cors_preflight_is_answered_for_browser_sdks(server):
    r = httpx.options(f"{server.url}/v1/t", headers={"Origin": "https://shop.example"})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert "POST" in r.headers["access-control-allow-methods"]


# -- batch context, clock skew, message ids ----------------------------------------------


def test_batch_level_context_is_merged_into_each_item_and_item_keys_win(workspace):
    user = uid()
    body = {
        "context": {"channel": "app", "locale": "ja-JP", "ip": "203.0.113.7", "app": {"version": "1.0"}},
        "batch": [
            {"type": "track", "userId": user, "event": "a", "timestamp": at(1)},
            {"type": "track", "userId": user, "event": "b", "timestamp": at(2), "context": {"locale": "en-US"}},
            {"type": "track", "userId": user, "event": "c", "timestamp": at(3), "context": {"channel": "store"}},
        ],
    }
    ok(workspace.ingest("/v1/batch", body))
    person = workspace.person("user_id", user)
    by_name = {e["event"]: e for e in workspace.timeline(person["person_id"])}
    assert by_name["a"]["context"] == {
        "channel": "app",
        "locale": "ja-JP",
        "ip": "203.0.113.7",
        "app": {"version": "1.0"},
    }
    assert by_name["b"]["context"]["locale"] == "en-US"
    assert by_name["b"]["context"]["ip"] == "203.0.113.7"
    assert by_name["b"]["channel"] == "app"
    assert by_name["c"]["channel"] == "store"
    assert by_name["c"]["context"]["locale"] == "ja-JP"
    assert person["channels"] == {"app": 2, "store": 1}


@pytest.mark.parametrize("where", ["item", "batch"])
@pytest.mark.parametrize("field", ["originalTimestamp", "timestamp"])
def test_clock_skew_of_a_client_one_hour_fast_is_corrected_from_sent_at(workspace, where, field):
    # The client's clock is an hour fast: it says the event happened at T and was sent at
    # T+10s, both an hour in the future. The server keeps the 10 seconds, not the clock.
    user = uid()
    client_now = datetime.now(UTC) + timedelta(hours=1)
    event_time = client_now - timedelta(seconds=10)
    msg = {"type": "track", "userId": user, "event": "view", field: event_time.isoformat()}
    if where == "item":
        ok(workspace.ingest("/v1/track", {**msg, "sentAt": client_now.isoformat()}))
    else:
        ok(workspace.ingest("/v1/batch", {"batch": [msg], "sentAt": client_now.isoformat()}))
    [entry] = workspace.timeline(workspace.person("user_id", user)["person_id"])
    stored, received = parse(entry["timestamp"]), parse(entry["received_at"])
    assert abs((received - stored) - timedelta(seconds=10)) < timedelta(milliseconds=2)
    assert abs(received - datetime.now(UTC)) < timedelta(seconds=30)


def test_timestamp_without_sent_at_is_kept_as_sent_for_historical_imports(workspace):
    user = uid()
    ok(
        workspace.ingest(
            "/v1/import", {"batch": [{"type": "track", "userId": user, "event": "buy", "timestamp": at(0)}]}
        )
    )
    [entry] = workspace.timeline(workspace.person("user_id", user)["person_id"])
    assert parse(entry["timestamp"]) == T0
    assert parse(entry["received_at"]) > T0 + timedelta(days=30)


def test_event_without_any_timestamp_is_stamped_with_the_receive_time(workspace):
    user = uid()
    before = datetime.now(UTC) - timedelta(seconds=1)
    ok(workspace.ingest("/v1/track", {"userId": user, "event": "view"}))
    [entry] = workspace.timeline(workspace.person("user_id", user)["person_id"])
    assert entry["timestamp"] == entry["received_at"]
    assert before <= parse(entry["timestamp"]) <= datetime.now(UTC) + timedelta(seconds=1)


def test_same_message_id_twice_in_separate_requests_is_stored_once(workspace):
    user = uid()
    msg = {"userId": user, "event": "buy", "messageId": "m-" + uuid.uuid4().hex, "properties": {"n": 1}}
    ok(workspace.ingest("/v1/track", msg))
    ok(workspace.ingest("/v1/track", {**msg, "properties": {"n": 2}}))
    person = workspace.person("user_id", user)
    events = workspace.timeline(person["person_id"])
    assert [(e["message_id"], e["properties"]) for e in events] == [(msg["messageId"], {"n": 1})]
    assert person["event_count"] == 1


def test_same_message_id_within_one_batch_and_again_in_a_later_batch_is_stored_once(workspace):
    user = uid()
    mid = "m-" + uuid.uuid4().hex
    item = {"type": "track", "userId": user, "event": "buy", "messageId": mid}
    other = {"type": "track", "userId": user, "event": "view", "messageId": mid + "-other"}
    ok(workspace.ingest("/v1/batch", {"batch": [item, item, other, item]}))
    ok(workspace.ingest("/v1/batch", {"batch": [item, other]}))
    ok(workspace.ingest("/v1/track", item))
    person = workspace.person("user_id", user)
    events = workspace.timeline(person["person_id"])
    assert sorted(e["message_id"] for e in events) == sorted([mid, mid + "-other"])
    assert person["event_count"] == 2


def test_duplicates_in_a_batch_with_a_rejected_item_are_counted_in_the_answer(workspace):
    user = uid()
    mid = "m-" + uuid.uuid4().hex
    item = {"type": "track", "userId": user, "event": "buy", "messageId": mid}
    body = ok(workspace.ingest("/v1/batch", {"batch": [item, item, {"type": "track", "userId": user}]}))
    assert body["accepted"] == 1
    assert body["duplicates"] == 1
    assert [(e["index"], e["field"]) for e in body["rejected"]] == [(2, "batch[2].event")]


def test_messages_without_message_id_each_get_a_unique_one(workspace):
    user = uid()
    ok(workspace.ingest("/v1/track", {"userId": user, "event": "a", "timestamp": at(1)}))
    ok(workspace.ingest("/v1/track", {"userId": user, "event": "a", "timestamp": at(1)}))
    ok(workspace.ingest("/v1/batch", {"batch": [{"type": "track", "userId": user, "event": "a"}] * 3}))
    events = workspace.timeline(workspace.person("user_id", user)["person_id"])
    ids = [e["message_id"] for e in events]
    assert len(ids) == 5
    assert all(isinstance(i, str) and i for i in ids)
    assert len(set(ids)) == 5


def test_numeric_ids_are_stored_as_strings(workspace):
    number = uuid.uuid4().int % 10**12
    ok(workspace.ingest("/v1/track", {"userId": number, "event": "view", "messageId": number + 1}))
    person = workspace.person("user_id", str(number))
    [entry] = workspace.timeline(person["person_id"])
    assert entry["user_id"] == str(number)
    assert entry["message_id"] == str(number + 1)


# -- identity -----------------------------------------------------------------------------


def test_anonymous_browsing_then_identify_gives_one_person_with_the_whole_story_in_order(workspace):
    anon, user = uid("anon"), uid()
    ok(workspace.ingest("/v1/page", {"anonymousId": anon, "name": "Top", "timestamp": at(1)}))
    ok(workspace.ingest("/v1/track", {"anonymousId": anon, "event": "view", "timestamp": at(2)}))
    ok(workspace.ingest("/v1/identify", {"anonymousId": anon, "userId": user, "timestamp": at(3)}))
    ok(workspace.ingest("/v1/track", {"userId": user, "event": "buy", "timestamp": at(4)}))
    person = workspace.person("user_id", user)
    assert workspace.person("anonymous_id", anon)["person_id"] == person["person_id"]
    assert person["identifiers"] == {"user_id": [user], "anonymous_id": [anon]}
    assert person["event_count"] == 4
    assert person["merged_ids"] == []
    events = workspace.timeline(person["person_id"])
    assert [(e["type"], e["event"]) for e in events] == [
        ("track", "buy"),
        ("identify", None),
        ("track", "view"),
        ("page", "Top"),
    ]
    assert not any(e["type"] == "merge" for e in events)


def test_identify_joining_two_known_people_merges_them_and_records_a_merge_entry(workspace):
    anon, user = uid("anon"), uid()
    # The member logged in on another device first, then browsed anonymously here.
    ok(workspace.ingest("/v1/track", {"userId": user, "event": "login", "timestamp": at(1)}))
    ok(workspace.ingest("/v1/page", {"anonymousId": anon, "name": "Top", "timestamp": at(2)}))
    ok(workspace.ingest("/v1/track", {"anonymousId": anon, "event": "view", "timestamp": at(3)}))
    member = workspace.person("user_id", user)["person_id"]
    browser = workspace.person("anonymous_id", anon)["person_id"]
    assert member != browser
    ok(workspace.ingest("/v1/identify", {"anonymousId": anon, "userId": user, "timestamp": at(4)}))

    person = workspace.person("user_id", user)
    assert person["person_id"] == member  # the person seen first survives
    assert workspace.person("anonymous_id", anon)["person_id"] == member
    assert person["merged_ids"] == [browser]
    assert person["event_count"] == 4
    assert parse(person["first_seen"]) == T0 + timedelta(seconds=1)
    events = workspace.timeline(member)
    assert [e["type"] for e in events] == ["merge", "identify", "track", "page", "track"]
    merge = events[0]
    assert merge["channel"] == "system"
    assert merge["properties"]["merged_person_id"] == browser
    assert merge["properties"]["identifiers"] == {"anonymous_id": [anon]}
    assert merge["properties"]["events"] == 2
    # The merged-away id still answers, with the survivor.
    with workspace.client() as c:
        r = c.get(f"/api/v1/people/{browser}")
        assert r.status_code == 200
        assert r.json()["person_id"] == member


def test_two_user_ids_sharing_an_anonymous_id_are_never_merged_and_the_conflict_is_recorded(workspace):
    anon, first, second = uid("shared-tablet"), uid(), uid()
    ok(workspace.ingest("/v1/identify", {"anonymousId": anon, "userId": first, "timestamp": at(1)}))
    ok(workspace.ingest("/v1/identify", {"anonymousId": anon, "userId": second, "timestamp": at(2)}))
    ok(workspace.ingest("/v1/track", {"anonymousId": anon, "userId": second, "event": "buy", "timestamp": at(3)}))

    one, two = workspace.person("user_id", first), workspace.person("user_id", second)
    assert one["person_id"] != two["person_id"]
    assert one["identifiers"]["user_id"] == [first]
    assert two["identifiers"]["user_id"] == [second]
    assert workspace.person("anonymous_id", anon)["person_id"] == one["person_id"]
    assert one["event_count"] == 1
    assert two["event_count"] == 2

    assert two["conflicts"], two
    conflict = two["conflicts"][0]
    assert conflict["type"] == "user_id"
    assert sorted(conflict["values"]) == sorted([first, second])
    entries = workspace.timeline(two["person_id"], type="identity_conflict")
    assert entries
    assert entries[0]["type"] == "identity_conflict"
    assert sorted(entries[0]["properties"]["values"]) == sorted([first, second])
    assert not any(e["type"] == "merge" for e in workspace.timeline(two["person_id"]))
    assert not any(e["type"] == "merge" for e in workspace.timeline(one["person_id"]))


def test_email_identifier_is_normalized_and_links_a_store_visit_to_the_web_member(workspace):
    user = uid()
    ok(workspace.ingest("/v1/identify", {"userId": user, "traits": {"email": "  Sato.Hanako@Example.JP "}}))
    for value in ("sato.hanako@example.jp", "SATO.HANAKO@EXAMPLE.JP", " Sato.Hanako@example.jp"):
        assert workspace.person("email", value)["identifiers"]["user_id"] == [user]
    person = workspace.person("user_id", user)
    assert person["identifiers"]["email"] == ["sato.hanako@example.jp"]
    # The POS only knows the email, typed differently: same person.
    pos = uid("pos")
    ok(
        workspace.ingest(
            "/v1/identify",
            {"anonymousId": pos, "traits": {"email": "SATO.hanako@example.jp"}, "context": {"channel": "store"}},
        )
    )
    assert workspace.person("anonymous_id", pos)["person_id"] == person["person_id"]


STORE_CONTEXTS = [
    {"channel": "store", "store_id": "S-001"},
    {"channel": "store", "storeId": "S-001"},
    {"channel": "store", "store": {"id": "S-001", "name": "渋谷店"}},
]


@pytest.mark.parametrize("context", STORE_CONTEXTS, ids=["store_id", "storeId", "store.id"])
def test_store_purchase_shows_channel_and_store_on_the_timeline_and_the_person(workspace, context):
    user = uid()
    ok(workspace.ingest("/v1/page", {"userId": user, "name": "Top", "timestamp": at(1)}))
    ok(
        workspace.ingest(
            "/v1/track",
            {
                "userId": user,
                "event": "Order Completed",
                "properties": {"order_id": "O-1", "revenue": 5400, "currency": "JPY"},
                "context": context,
                "timestamp": at(2),
            },
        )
    )
    person = workspace.person("user_id", user)
    assert person["channels"] == {"web": 1, "store": 1}
    assert person["stores"] == {"S-001": 1}
    buy, page = workspace.timeline(person["person_id"])
    assert (buy["event"], buy["channel"], buy["store_id"]) == ("Order Completed", "store", "S-001")
    assert buy["properties"]["revenue"] == 5400
    assert (page["channel"], page["store_id"]) == ("web", None)


@pytest.mark.parametrize(
    ("kind", "context_channel", "expected"),
    [
        ("track", None, "server"),
        ("page", None, "web"),
        ("screen", None, "app"),
        ("track", "browser", "web"),
        ("track", "client", "web"),
        ("track", "mobile", "app"),
        ("track", "LINE", "line"),
        ("page", "store", "store"),
    ],
)
def test_channel_defaults_by_type_and_segment_channel_names_are_mapped(workspace, kind, context_channel, expected):
    user = uid()
    msg: dict[str, Any] = {"userId": user, "event": "e", "name": "n"}
    if context_channel:
        msg["context"] = {"channel": context_channel}
    ok(workspace.ingest(f"/v1/{kind}", msg))
    person = workspace.person("user_id", user)
    assert [e["channel"] for e in workspace.timeline(person["person_id"])] == [expected]
    assert person["channels"] == {expected: 1}


# -- traits -------------------------------------------------------------------------------

# Each case: identify calls in arrival order as (seconds after T0, traits), and the
# traits the person ends up with. Newest timestamp wins, whatever the arrival order.
TRAIT_CASES = {
    "newest-wins-in-order": ([(1, {"name": "old"}), (2, {"name": "new"})], {"name": "new"}),
    "newest-wins-out-of-order": ([(2, {"name": "new"}), (1, {"name": "old"})], {"name": "new"}),
    "late-old-write-adds-a-new-key": (
        [(5, {"name": "new"}), (1, {"name": "old", "plan": "basic"})],
        {"name": "new", "plan": "basic"},
    ),
    "set-once-keeps-the-earliest": (
        [(2, {"$set_once": {"source": "ad"}}), (1, {"$set_once": {"source": "organic"}})],
        {"source": "organic"},
    ),
    "set-once-does-not-overwrite-an-ordinary-write": (
        [(1, {"source": "direct"}), (2, {"$set_once": {"source": "ad"}})],
        {"source": "direct"},
    ),
    "ordinary-write-overrides-set-once": (
        [(1, {"$set_once": {"source": "ad"}}), (2, {"source": "direct"})],
        {"source": "direct"},
    ),
    "unset-removes": ([(1, {"plan": "gold", "name": "x"}), (2, {"$unset": ["plan"]})], {"name": "x"}),
    "unset-as-a-single-name": ([(1, {"plan": "gold"}), (2, {"$unset": "plan"})], {}),
    "late-older-write-does-not-resurrect-an-unset": (
        [(1, {"plan": "gold"}), (3, {"$unset": ["plan"]}), (2, {"plan": "silver"})],
        {},
    ),
    "newer-write-after-unset-shows-again": (
        [(1, {"plan": "gold"}), (2, {"$unset": ["plan"]}), (3, {"plan": "platinum"})],
        {"plan": "platinum"},
    ),
    "late-unset-older-than-the-write-is-ignored": (
        [(3, {"plan": "gold"}), (2, {"$unset": ["plan"]})],
        {"plan": "gold"},
    ),
    "nested-and-japanese-values": (
        [(1, {"address": {"city": "東京都", "zip": "150-0001"}, "名前": "佐藤"})],
        {"address": {"city": "東京都", "zip": "150-0001"}, "名前": "佐藤"},
    ),
}


@pytest.mark.parametrize(("calls", "expected"), list(TRAIT_CASES.values()), ids=list(TRAIT_CASES))
def test_identify_traits_set_set_once_and_unset_resolve_by_timestamp_not_arrival(workspace, calls, expected):
    user = uid()
    for seconds, traits in calls:
        ok(workspace.ingest("/v1/identify", {"userId": user, "traits": traits, "timestamp": at(seconds)}))
    assert workspace.person("user_id", user)["traits"] == expected


def test_traits_sent_in_context_traits_of_an_identify_are_applied(workspace):
    # rudder-sdk-python and the browser SDKs put identify traits into context.traits.
    user = uid()
    ok(workspace.ingest("/v1/identify", {"userId": user, "context": {"traits": {"email": "A@B.jp", "rank": "gold"}}}))
    person = workspace.person("user_id", user)
    assert person["traits"] == {"email": "A@B.jp", "rank": "gold"}
    assert person["identifiers"]["email"] == ["a@b.jp"]


def test_track_properties_never_become_traits(workspace):
    user = uid()
    ok(workspace.ingest("/v1/track", {"userId": user, "event": "buy", "properties": {"name": "x"}, "traits": {"a": 1}}))
    assert workspace.person("user_id", user)["traits"] == {}


# -- the timeline: paging and filters ---------------------------------------------------


def test_timeline_paging_with_limit_and_cursor_returns_every_event_once_newest_first(workspace):
    user = uid()
    # 23 events, with runs of equal timestamps so the cursor must break ties.
    batch = [
        {"type": "track", "userId": user, "event": f"e{i}", "timestamp": at(i // 3), "messageId": f"{user}-m{i:02d}"}
        for i in range(23)
    ]
    ok(workspace.ingest("/v1/batch", {"batch": batch}))
    person = workspace.person("user_id", user)
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    with workspace.client() as c:
        while True:
            params: dict[str, Any] = {"limit": 5}
            if cursor:
                params["cursor"] = cursor
            r = c.get(f"/api/v1/people/{person['person_id']}/events", params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            pages += 1
            assert len(body["events"]) <= 5
            seen += body["events"]
            cursor = body["next_cursor"]
            if cursor is None:
                break
            assert pages < 10
    assert pages == 5
    ids = [e["message_id"] for e in seen]
    assert sorted(ids) == sorted(b["messageId"] for b in batch)
    assert len(ids) == len(set(ids))
    keys = [(parse(e["timestamp"]), e["message_id"]) for e in seen]
    assert keys == sorted(keys, reverse=True)


def test_timeline_limit_equal_to_the_count_has_no_next_cursor(workspace):
    user = uid()
    ok(workspace.ingest("/v1/batch", {"batch": [{"type": "track", "userId": user, "event": "e"}] * 4}))
    pid = workspace.person("user_id", user)["person_id"]
    with workspace.client() as c:
        body = c.get(f"/api/v1/people/{pid}/events", params={"limit": 4}).json()
    assert len(body["events"]) == 4
    assert body["next_cursor"] is None


@pytest.fixture(scope="module")
def mixed_history(shared_workspace: Any) -> str:
    """One person with a mixed history, read by every filter case."""
    user = uid()
    batch = [
        {"type": "page", "userId": user, "name": "Top", "timestamp": at(1)},
        {"type": "track", "userId": user, "event": "view", "timestamp": at(2)},
        {"type": "track", "userId": user, "event": "cart", "timestamp": at(3), "context": {"channel": "app"}},
        {"type": "track", "userId": user, "event": "view", "timestamp": at(4), "context": {"channel": "app"}},
        {
            "type": "track",
            "userId": user,
            "event": "buy",
            "timestamp": at(5),
            "context": {"channel": "store", "store_id": "S-9"},
        },
        {"type": "identify", "userId": user, "traits": {"a": 1}, "timestamp": at(6)},
    ]
    ok(shared_workspace.ingest("/v1/batch", {"batch": batch}))
    return shared_workspace.person("user_id", user)["person_id"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"event": "view"}, [("track", "view", "app"), ("track", "view", "server")]),
        (
            {"event": ["view", "buy"]},
            [("track", "buy", "store"), ("track", "view", "app"), ("track", "view", "server")],
        ),
        ({"channel": "app"}, [("track", "view", "app"), ("track", "cart", "app")]),
        ({"channel": ["store", "web"]}, [("track", "buy", "store"), ("page", "Top", "web")]),
        ({"event": "view", "channel": "app"}, [("track", "view", "app")]),
        ({"type": "identify"}, [("identify", None, "server")]),
        ({"type": ["page", "identify"]}, [("identify", None, "server"), ("page", "Top", "web")]),
        ({"event": "nothing-like-this"}, []),
    ],
)
def test_timeline_filters_by_event_channel_and_type(workspace, mixed_history, params, expected):
    events = workspace.timeline(mixed_history, **params)
    assert [(e["type"], e["event"], e["channel"]) for e in events] == expected


def test_timeline_filter_combined_with_paging(workspace):
    user = uid()
    batch = [
        {"type": "track", "userId": user, "event": "view" if i % 2 else "cart", "timestamp": at(i)} for i in range(12)
    ]
    ok(workspace.ingest("/v1/batch", {"batch": batch}))
    pid = workspace.person("user_id", user)["person_id"]
    got: list[str] = []
    cursor = None
    with workspace.client() as c:
        for _ in range(10):
            r = c.get(
                f"/api/v1/people/{pid}/events",
                params={"event": "view", "limit": 4, **({"cursor": cursor} if cursor else {})},
            )
            body = r.json()
            got += [e["timestamp"] for e in body["events"]]
            assert all(e["event"] == "view" for e in body["events"])
            cursor = body["next_cursor"]
            if not cursor:
                break
    assert got == [at(i) for i in (11, 9, 7, 5, 3, 1)]


def test_an_acknowledged_event_is_readable_at_once(workspace):
    # The engine applies an event before the request is answered, and reads flush the
    # analytics store: no sleep is needed between a 200 and the timeline.
    user = uid()
    for i in range(3):
        ok(workspace.ingest("/v1/track", {"userId": user, "event": f"e{i}"}))
        assert workspace.person("user_id", user)["event_count"] == i + 1
        assert len(workspace.timeline(workspace.person("user_id", user)["person_id"])) == i + 1


# -- known crash bugs ---------------------------------------------------------------------
# These run on a server of their own: while the bugs stand they log tracebacks (which
# test_bad_input.py asserts its server never does) and leave the server unable to shut
# down cleanly, so it is killed rather than stopped.


@pytest.fixture(scope="module")
def fragile(server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    own = type(server)(tmp_path_factory.mktemp("fragile"), free_port())
    own.start()
    yield own
    own.kill9()


@pytest.fixture
def fragile_workspace(fragile: Any) -> Any:
    return new_workspace(fragile)


def test_deeply_nested_batch_context_is_refused_and_never_breaks_the_timeline(fragile_workspace):
    workspace = fragile_workspace
    user = uid("deep")
    deep = b'{"a":' * 900 + b"1" + b"}" * 900
    body = b'{"batch": [{"type": "track", "userId": "%s", "event": "e"}], "context": %s}' % (user.encode(), deep)
    r = raw_post(workspace, "/v1/batch", body)
    if r.status_code == 200:
        pid = workspace.person("user_id", user)["person_id"]
        with workspace.client() as c:
            timeline = c.get(f"/api/v1/people/{pid}/events")
        assert timeline.status_code != 500, "the timeline of a person with a deep batch context is a 500"
    assert r.status_code == 400, r.text
    assert r.json()["error"]["errors"][0]["field"] == "context"


def test_a_new_user_id_is_never_merged_into_another_member_through_a_shared_email(make_workspace):
    ws = make_workspace()
    ok(ws.ingest("/v1/identify", {"userId": "U-1", "traits": {"email": "family@example.jp", "name": "one"}}))
    ok(ws.ingest("/v1/page", {"anonymousId": "a-2", "name": "Top", "timestamp": at(1)}))
    ok(
        ws.ingest(
            "/v1/identify",
            {"userId": "U-2", "anonymousId": "a-2", "traits": {"email": "family@example.jp", "name": "two"}},
        )
    )
    one = ws.person("user_id", "U-1")
    assert one["traits"]["name"] == "one"
    assert one["merged_ids"] == []
    assert "anonymous_id" not in one["identifiers"]
    with ws.client() as c:
        r = c.get("/api/v1/people/lookup", params={"type": "user_id", "value": "U-2"})
    assert r.status_code == 200, "U-2's identify was filed under U-1"
    two = r.json()
    assert two["identifiers"]["anonymous_id"] == ["a-2"]
    assert two["traits"]["name"] == "two"
    assert two["conflicts"]


@pytest.mark.parametrize("traits", ["gold", ["a", "b"]], ids=["string", "list"])
def test_identify_with_context_traits_that_are_not_an_object_never_takes_the_workspace_down(fragile_workspace, traits):
    # Before 28c8d25 this crashed the engine (503, workspace reopened, a batch's good items lost).
    ws = fragile_workspace
    single = ws.ingest("/v1/identify", {"userId": "U-1", "context": {"traits": traits}})
    assert single.status_code in (200, 400), single.text
    if single.status_code == 400:
        assert single.json()["error"]["errors"][0]["field"] == "context.traits"
    else:
        assert ws.person("user_id", "U-1")["traits"] == {}
    good = {"type": "track", "userId": "U-2", "event": "buy", "messageId": uid("m")}
    bad = {"type": "identify", "userId": "U-3", "context": {"traits": traits}}
    mixed = ws.ingest("/v1/batch", {"batch": [good, bad]})
    assert mixed.status_code == 200, mixed.text
    assert [e["index"] for e in mixed.json().get("rejected", [])] in ([], [1])
    assert [e["message_id"] for e in ws.timeline(ws.person("user_id", "U-2")["person_id"])] == [good["messageId"]]
    ok(ws.ingest("/v1/track", {"userId": "U-4", "event": "after"}))


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/track", "properties"),
        pytest.param(
            "/v1/identify",
            "traits",
        ),
    ],
)
def test_an_integer_beyond_64_bits_is_refused_and_never_half_applied(fragile_workspace, path, field):
    ws = fragile_workspace
    mid = uid("m")
    body = b'{"userId": "U-big", "event": "buy", "messageId": "%s", "%s": {"n": 123456789012345678901234567890}}' % (
        mid.encode(),
        field.encode(),
    )
    r = raw_post(ws, path, body)
    if r.status_code == 200:
        [entry] = ws.timeline(ws.person("user_id", "U-big")["person_id"])
        assert entry["message_id"] == mid
        return
    with ws.client() as c:
        half = c.get("/api/v1/people/lookup", params={"type": "user_id", "value": "U-big"})
    assert half.status_code == 404, f"answered {r.status_code}, yet the person exists: {half.text}"
    # The client fixes the number and retries with the same messageId: it must be stored.
    ok(ws.ingest(path, {"userId": "U-big", "event": "buy", "messageId": mid, field: {"n": "1234567890"}}))
    [entry] = ws.timeline(ws.person("user_id", "U-big")["person_id"])
    assert entry["message_id"] == mid
    assert r.status_code == 400, r.text


def test_an_absurd_client_clock_never_breaks_the_person_or_search(fragile_workspace):
    ws = fragile_workspace
    r = ws.ingest(
        "/v1/track",
        {
            "userId": "U-clock",
            "event": "view",
            "originalTimestamp": "0001-01-01T00:00:00Z",
            "sentAt": "9999-12-31T23:59:59Z",
        },
    )
    if r.status_code == 400:
        assert {e["field"] for e in r.json()["error"]["errors"]} & {"originalTimestamp", "sentAt", "timestamp"}
        return
    ok(r)
    # One connection each: the server drops a keep-alive connection after a 500.
    with ws.client() as c:
        person = c.get("/api/v1/people/lookup", params={"type": "user_id", "value": "U-clock"})
    with ws.client() as c:
        search = c.get("/api/v1/people", params={"q": "U-clock"})
    assert person.status_code == 200, person.text
    assert search.status_code == 200, search.text
    assert len(ws.timeline(person.json()["person_id"])) == 1
