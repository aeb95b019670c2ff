"""The real Segment and RudderStack Python SDKs talk to tsunagu unchanged.

Both SDKs post `{"batch": [...], "sentAt", "writeKey"}` to `/v1/batch` with the write key
as the basic-auth user; rudder-sdk-python gzips the body and puts identify traits into
`context.traits`. Each SDK runs in sync mode (one request per call) and in its default
background-thread mode (queued, sent as real multi-message batches, flushed at the end).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rudderstack.analytics.client as rudder_client
import rudderstack.analytics.request as rudder_request
import segment.analytics as segment_analytics
import segment.analytics.request as segment_request


def make_client(sdk: str, write_key: str, url: str, *, sync_mode: bool, errors: list[Any]) -> Any:
    """A client that gives up fast on errors: no retry storm against a failing test server."""

    def on_error(exc: Exception, batch: list[Any]) -> None:
        errors.append(exc)

    common = {
        "host": url,
        "sync_mode": sync_mode,
        "max_retries": 1,
        "timeout": 10,
        "on_error": on_error,
        "upload_interval": 0.05,
        "upload_size": 100,
    }
    if sdk == "segment":
        return segment_analytics.Client(write_key, max_total_backoff_duration=5, max_rate_limit_duration=5, **common)
    return rudder_client.Client(write_key, **common)


@pytest.fixture
def workspace(shared_workspace: Any) -> Any:
    """Every test keeps to its own uuid user ids: one workspace serves the module."""
    return shared_workspace


@pytest.fixture(params=["segment", "rudder"])
def sdk(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=[True, False], ids=["sync", "queued"])
def client(request: pytest.FixtureRequest, sdk: str, workspace: Any) -> Iterator[tuple[Any, list[Any]]]:
    errors: list[Any] = []
    c = make_client(sdk, workspace.write_key, workspace.url, sync_mode=request.param, errors=errors)
    yield c, errors
    if not request.param:
        c.shutdown()  # flush and stop the consumer thread (sync mode has none)


def flush(c: Any) -> None:
    if not c.sync_mode:
        c.flush()


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def test_sdk_identify_track_page_and_a_batch_reach_one_person_with_the_right_timeline(client, workspace):
    c, errors = client
    user, anon = f"M-{uuid.uuid4().hex[:8]}", f"anon-{uuid.uuid4().hex[:8]}"
    email = f"Hanako.Sato+{uuid.uuid4().hex[:6]}@Example.JP"
    sent: list[dict[str, Any]] = []

    def keep(result: tuple[bool, dict[str, Any]]) -> None:
        ok, message = result
        assert ok
        sent.append(message)

    started = datetime.now(UTC)
    keep(c.page(anonymous_id=anon, category="shop", name="Top", properties={"url": "https://shop.example/"}))
    keep(
        c.identify(
            user,
            {"email": email, "name": "佐藤花子", "member_rank": "gold"},
            anonymous_id=anon,
        )
    )
    keep(c.track(user, "Product Viewed", {"sku": "A-1", "price": 1200, "tags": ["new", "sale"]}))
    keep(c.page(user, "shop", "Product", {"url": "https://shop.example/p/A-1"}))
    # A burst the queued client sends as one /v1/batch request.
    for i in range(5):
        keep(c.track(user, f"Step {i}", {"i": i}))
    keep(c.screen(user, name="Cart"))
    keep(c.group(user, "G-1", {"plan": "b2b"}))
    flush(c)
    assert errors == []

    person = workspace.person("user_id", user)
    assert person["identifiers"]["user_id"] == [user]
    assert person["identifiers"]["anonymous_id"] == [anon]
    assert person["identifiers"]["email"] == [email.lower()]
    assert person["traits"]["email"] == email
    assert person["traits"]["name"] == "佐藤花子"
    assert person["traits"]["member_rank"] == "gold"
    assert person["event_count"] == len(sent)
    assert workspace.person("email", email.upper())["person_id"] == person["person_id"]
    assert workspace.person("anonymous_id", anon)["person_id"] == person["person_id"]

    events = workspace.timeline(person["person_id"])
    # Every message exactly once, under the SDK's own messageId.
    assert sorted(e["message_id"] for e in events) == sorted(m["messageId"] for m in sent)
    by_id = {e["message_id"]: e for e in events}
    for m in sent:
        e = by_id[m["messageId"]]
        assert e["type"] == m["type"]
        assert e["event"] == (m.get("event") if m["type"] == "track" else m.get("name"))
        assert e["properties"] == m.get("properties", {})
        assert e["context"]["library"]["name"] == "analytics-python"
        # The SDK stamps `timestamp` and `sentAt` with the same clock: stored times are real.
        assert started - timedelta(seconds=5) <= parse(e["timestamp"]) <= datetime.now(UTC) + timedelta(seconds=5)
    kinds = [(e["type"], e["event"]) for e in events]
    assert ("track", "Product Viewed") in kinds
    assert ("page", "Top") in kinds
    assert ("screen", "Cart") in kinds
    assert [k for k in kinds if k[0] == "identify"] == [("identify", None)]
    viewed = next(e for e in events if e["event"] == "Product Viewed")
    assert viewed["properties"] == {"sku": "A-1", "price": 1200, "tags": ["new", "sale"]}
    assert viewed["channel"] == "server"
    assert next(e for e in events if e["event"] == "Top")["channel"] == "web"
    stamps = [(parse(e["timestamp"]), e["message_id"]) for e in events]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    if not c.sync_mode:
        # The queued client really sent multi-message batches (one receive time per request).
        assert max(Counter(e["received_at"] for e in events).values()) > 1


def test_sdk_alias_links_the_anonymous_visitor_to_the_member(client, workspace):
    c, errors = client
    user, anon = f"M-{uuid.uuid4().hex[:8]}", f"anon-{uuid.uuid4().hex[:8]}"
    c.track(anonymous_id=anon, event="Product Viewed", properties={"sku": "B-2"})
    flush(c)  # the anonymous person exists before the alias
    c.alias(anon, user)
    c.track(user, "Order Completed", {"order_id": "O-1", "revenue": 3300})
    flush(c)
    assert errors == []
    person = workspace.person("user_id", user)
    assert workspace.person("anonymous_id", anon)["person_id"] == person["person_id"]
    events = workspace.timeline(person["person_id"])
    assert {e["event"] for e in events if e["type"] == "track"} == {"Product Viewed", "Order Completed"}
    assert [e["type"] for e in events if e["type"] == "alias"] == ["alias"]


def test_sdk_resending_the_same_message_id_stores_it_once(client, workspace):
    c, errors = client
    user, mid = f"M-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    for _ in range(3):
        c.track(user, "Order Completed", {"order_id": "O-9"}, message_id=mid)
    flush(c)
    assert errors == []
    [entry] = workspace.timeline(workspace.person("user_id", user)["person_id"])
    assert entry["message_id"] == mid


def test_segment_sdk_in_sync_mode_raises_a_clean_api_error_on_a_wrong_write_key(workspace):
    c = make_client("segment", "wk_wrong", workspace.url, sync_mode=True, errors=[])
    with pytest.raises(segment_request.APIError) as info:
        c.track("M-1", "view")
    assert info.value.status == 401


def test_segment_sdk_in_queued_mode_reports_a_wrong_write_key_to_on_error_without_retrying(workspace):
    errors: list[Any] = []
    c = make_client("segment", "wk_wrong", workspace.url, sync_mode=False, errors=errors)
    c.track("M-1", "view")
    c.shutdown()
    assert len(errors) == 1
    assert isinstance(errors[0], segment_request.APIError)
    assert errors[0].status == 401


def test_rudder_sdk_in_sync_mode_raises_a_clean_api_error_on_a_wrong_write_key(workspace):
    c = make_client("rudder", "wk_wrong", workspace.url, sync_mode=True, errors=[])
    with pytest.raises(rudder_request.APIError) as info:
        c.track("M-1", "view")
    assert info.value.status == 401
