"""Bad requests get the right status and an error that names the field; nothing crashes.

Every error body has the one shape (tests/api/error_shape.py):
`{"error": {"status", "code", "message", "errors"?: [{"field", "reason", "index"?}]}, "code", "message"}`.
The last test checks the server is still up and logged no traceback after all of it.
"""

# The CASES table keeps one request a line, however long.
# ruff: noqa: E501

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from .error_shape import assert_one_error_shape


@pytest.fixture
def workspace(shared_workspace: Any) -> Any:
    """Bad input stores nothing (and good input here uses uuid ids): one workspace serves."""
    return shared_workspace


def j(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def nested_dict(levels: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def nested_arrays(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@dataclass
class Bad:
    """One bad request. `body` gets the workspace (for a writeKey in the body)."""

    path: str
    body: Callable[[Any], bytes]
    status: int
    field: str | None = None  # a field the errors must name (None: do not check)
    auth: str = "basic"  # basic | none | wrong | bearer | garbage | token
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    method: str = "POST"
    reason_contains: str | None = None


def const(data: bytes) -> Callable[[Any], bytes]:
    return lambda ws: data


def msg(**fields: Any) -> Callable[[Any], bytes]:
    return const(j(fields))


def with_key(**fields: Any) -> Callable[[Any], bytes]:
    return lambda ws: j({"writeKey": ws.write_key, **fields})


def batch(*items: Any, **extra: Any) -> Callable[[Any], bytes]:
    return const(j({"batch": list(items), **extra}))


def gzip_bomb(path: str) -> Callable[[Any], bytes]:
    # ~5 KB on the wire, 5 MB inflated.
    filler = "a" * 5_000_000
    if path == "/v1/batch":
        body = {"batch": [{"type": "track", "userId": "u", "event": "e", "properties": {"p": filler}}]}
    else:
        body = {"userId": "u", "event": "e", "properties": {"p": filler}}
    data = gzip.compress(j(body), 9)
    assert len(data) < 10_000
    return const(data)


GOOD = {"userId": "u-good", "event": "view"}
BIG = "x" * (33 * 1024)

CASES = [
    # -- malformed bodies
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e",}'), 400, "", reason_contains="JSON"), id="malformed-json"),
    pytest.param(Bad("/v1/batch", const(b'{"batch": [}'), 400, "", reason_contains="JSON"), id="malformed-json-batch"),
    pytest.param(Bad("/v1/track", const(b""), 400, ""), id="empty-body"),
    pytest.param(Bad("/v1/track", const(b"null"), 400, ""), id="json-null"),
    pytest.param(Bad("/v1/track", const(b"[1, 2]"), 400, ""), id="json-array-not-object"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u\xff\xfe", "event": "e"}'), 400, "userId", reason_contains="UTF-8"), id="invalid-utf8"),
    pytest.param(Bad("/v1/batch", const(b'{"batch": [{"type": "track", "userId": "\xc3\x28", "event": "e"}]}'), 400), id="invalid-utf8-in-batch-item"),
    # -- wrong types
    pytest.param(Bad("/v1/track", msg(userId=["u"], event="e"), 400, "userId"), id="userId-list"),
    pytest.param(Bad("/v1/track", msg(userId=True, event="e"), 400, "userId"), id="userId-bool"),
    pytest.param(Bad("/v1/track", msg(anonymousId={"a": 1}, event="e"), 400, "anonymousId"), id="anonymousId-object"),
    pytest.param(Bad("/v1/track", msg(userId="u" * 300, event="e"), 400, "userId"), id="userId-too-long"),
    pytest.param(Bad("/v1/track", msg(userId="u", event="e", properties="cheap"), 400, "properties"), id="properties-string"),
    pytest.param(Bad("/v1/identify", msg(userId="u", traits=["a"]), 400, "traits"), id="traits-list"),
    pytest.param(Bad("/v1/track", msg(userId="u", event="e", context="web"), 400, "context"), id="context-string"),
    pytest.param(Bad("/v1/track", msg(userId="u", event=42), 400, "event"), id="event-number"),
    pytest.param(Bad("/v1/track", msg(userId="u", event="e" * 201), 400, "event"), id="event-name-too-long"),
    pytest.param(Bad("/v1/track", msg(userId="u", event="e", timestamp="yesterday"), 400, "timestamp"), id="timestamp-not-a-date"),
    pytest.param(Bad("/v1/track", msg(userId="u", event="e", sentAt=[2024]), 400, "sentAt"), id="sentAt-list"),
    pytest.param(Bad("/v1/track", msg(userId="u", event="e", messageId={"id": 1}), 400, "messageId"), id="messageId-object"),
    pytest.param(Bad("/v1/track", msg(userId="u", event="e", context={"channel": "Web Store!"}), 400, "context.channel"), id="channel-invalid"),
    pytest.param(Bad("/v1/track", msg(userId="u", event="e", context={"channel": 5}), 400, "context.channel"), id="channel-number"),
    pytest.param(Bad("/v1/track", msg(userId="u", event="e", context={"store_id": ["S1"]}), 400, "context.store_id"), id="store-id-list"),
    pytest.param(Bad("/v1/track", msg(userId="u", event="e", context={"store": {"id": {"code": "S1"}}}), 400, "context.store_id"), id="store-id-object"),
    # -- missing fields
    pytest.param(Bad("/v1/track", msg(event="e"), 400, "userId"), id="missing-ids"),
    pytest.param(Bad("/v1/track", msg(userId="", anonymousId="", event="e"), 400, "userId"), id="empty-ids"),
    pytest.param(Bad("/v1/track", msg(userId="u"), 400, "event"), id="track-without-event"),
    pytest.param(Bad("/v1/track", msg(userId="u", event=""), 400, "event"), id="track-empty-event"),
    pytest.param(Bad("/v1/group", msg(userId="u"), 400, "groupId"), id="group-without-groupId"),
    pytest.param(Bad("/v1/alias", msg(userId="u"), 400, "previousId"), id="alias-without-previousId"),
    pytest.param(Bad("/v1/alias", msg(previousId="a"), 400, "userId"), id="alias-without-userId"),
    # -- batches
    pytest.param(Bad("/v1/batch", batch({"type": "purchase", "userId": "u"}), 400, "batch[0].type"), id="batch-unknown-type"),
    pytest.param(Bad("/v1/batch", batch({"userId": "u", "event": "e"}), 400, "batch[0].type"), id="batch-item-without-type"),
    pytest.param(Bad("/v1/batch", batch(1), 400, "batch[0]"), id="batch-item-not-an-object"),
    pytest.param(Bad("/v1/batch", batch({"type": "track", "userId": ["u"], "event": "e"}), 400, "batch[0].userId"), id="batch-item-wrong-type"),
    pytest.param(Bad("/v1/batch", const(j({"batch": {"type": "track"}})), 400, "batch"), id="batch-not-a-list"),
    pytest.param(Bad("/v1/batch", const(j({"type": "track", "userId": "u", "event": "e"})), 400, "batch"), id="batch-missing"),
    pytest.param(Bad("/v1/batch", batch(), 400, "batch"), id="empty-batch"),
    pytest.param(Bad("/v1/batch", batch({"type": "track", "userId": "u", "event": "e"}, context=[1]), 400, "context"), id="batch-context-list"),
    # -- sizes
    pytest.param(Bad("/v1/track", msg(userId="u", event="e", properties={"p": BIG}), 413, "", reason_contains="32 KB"), id="track-over-32KB"),
    pytest.param(Bad("/v1/identify", msg(userId="u", traits={"bio": BIG}), 413, ""), id="identify-over-32KB"),
    pytest.param(Bad("/v1/batch", batch({"type": "track", "userId": "u", "event": "e", "properties": {"p": BIG}}), 400, "batch[0]", reason_contains="32 KB"), id="batch-item-over-32KB"),
    pytest.param(Bad("/v1/batch", batch(*[{"type": "track", "userId": "u", "event": "e", "properties": {"p": "x" * 20_000}}] * 30), 413, "", reason_contains="500 KB"), id="batch-over-500KB"),
    pytest.param(Bad("/v1/batch", batch(*[{"type": "track", "userId": "u", "event": "e", "properties": {"p": "x" * 10_200}}] * 50), 413, "", reason_contains="500 KB"), id="batch-just-over-500KB"),
    pytest.param(Bad("/v1/track", const(j(GOOD) + b" " * 600_000), 413, ""), id="track-body-over-500KB"),
    # -- compression
    pytest.param(Bad("/v1/batch", gzip_bomb("/v1/batch"), 413, "", headers={"Content-Encoding": "gzip"}), id="gzip-bomb-batch"),
    pytest.param(Bad("/v1/track", gzip_bomb("/v1/track"), 413, "", headers={"Content-Encoding": "gzip"}), id="gzip-bomb-track"),
    pytest.param(Bad("/v1/track", const(j(GOOD)), 400, "", headers={"Content-Encoding": "gzip"}, reason_contains="gzip"), id="not-gzip"),
    pytest.param(Bad("/v1/track", const(gzip.compress(j(GOOD))[:-12]), 400, "", headers={"Content-Encoding": "gzip"}), id="truncated-gzip"),
    pytest.param(Bad("/v1/batch", const(b"\x1f\x8b\x08\x00garbage"), 400, "", headers={"Content-Encoding": "gzip"}), id="garbage-gzip"),
    # -- nesting
    pytest.param(Bad("/v1/track", msg(userId="u", event="e", properties=nested_dict(40)), 400, "properties", reason_contains="nested"), id="properties-nested-40"),
    pytest.param(Bad("/v1/identify", msg(userId="u", traits=nested_dict(40)), 400, "traits"), id="traits-nested-40"),
    pytest.param(Bad("/v1/track", msg(userId="u", event="e", context=nested_dict(40)), 400, "context"), id="context-nested-40"),
    pytest.param(Bad("/v1/batch", batch({"type": "track", "userId": "u", "event": "e", "properties": nested_dict(40)}), 400, "batch[0].properties"), id="batch-item-properties-nested-40"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e", "properties": {"a": ' + nested_arrays(10_000) + b"}}"), 400, reason_contains="nested"), id="properties-10000-nested-arrays"),
    pytest.param(Bad("/v1/batch", const(b'{"batch": [' + nested_arrays(100_000) + b"]}"), 400, reason_contains="nested"), id="batch-item-100000-nested-arrays"),
    pytest.param(Bad("/v1/batch", const(nested_arrays(100_000)), 400), id="body-100000-nested-arrays"),
    pytest.param(Bad("/v1/batch", const(b'{"batch": [], "context": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001), 400, reason_contains="nested"), id="batch-context-50000-nested-objects"),
    # -- what no store can hold, in every part of an event (issue 9)
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e", "context": {"s": "\xff"}}'), 400, "context.s", reason_contains="UTF-8"), id="context-invalid-utf8"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e", "properties": {"a": ["ok", "\xc3\x28"]}}'), 400, "properties.a[1]", reason_contains="UTF-8"), id="properties-invalid-utf8-in-a-list"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e", "properties": {"\xff\xfe": 1}}'), 400, "properties", reason_contains="key"), id="properties-key-invalid-utf8"),
    pytest.param(Bad("/v1/identify", const(b'{"userId": "u", "traits": {"name": "\xed\xa0\x80"}}'), 400, "traits.name"), id="traits-utf8-encoded-surrogate"),
    pytest.param(Bad("/v1/group", const(b'{"userId": "u", "groupId": "g", "properties": {"s": "\xff"}}'), 400, "properties.s"), id="group-properties-invalid-utf8"),
    pytest.param(Bad("/v1/identify", const(b'{"userId": "u", "properties": {"s": "\xff"}}'), 400, "properties.s"), id="identify-properties-invalid-utf8"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e", "properties": {"s": "\\ud800"}}'), 400, "properties.s", reason_contains="surrogate"), id="properties-lone-high-surrogate"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e", "context": {"page": {"title": "\\udc00x"}}}'), 400, "context.page.title"), id="context-lone-low-surrogate"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u\\ud800", "event": "e"}'), 400, "userId"), id="userId-lone-surrogate"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e", "properties": {"n": 123456789012345678901234567890}}'), 400, "properties.n", reason_contains="64-bit"), id="properties-int-past-64-bits"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e", "properties": {"n": 18446744073709551615}}'), 400, "properties.n", reason_contains="64-bit"), id="properties-uint64-max"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e", "properties": {"n": 9223372036854775808}}'), 400, "properties.n"), id="properties-int64-max-plus-one"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e", "properties": {"n": -9223372036854775809}}'), 400, "properties.n"), id="properties-int64-min-minus-one"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e", "properties": {"n": ' + b"9" * 5000 + b"}}"), 400, "properties.n"), id="properties-int-of-5000-digits"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e", "properties": {"n": 1e400}}'), 400, "properties.n", reason_contains="finite"), id="properties-float-overflow"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e", "properties": {"items": [{"price": -1e309}]}}'), 400, "properties.items[0].price"), id="properties-negative-float-overflow-in-a-list"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e", "context": {"n": 1e400}}'), 400, "context.n"), id="context-float-overflow"),
    pytest.param(Bad("/v1/identify", const(b'{"userId": "u", "traits": {"n": 1e400}}'), 400, "traits.n"), id="traits-float-overflow"),
    pytest.param(Bad("/v1/identify", const(b'{"userId": "u", "traits": {"n": 18446744073709551615}}'), 400, "traits.n"), id="traits-uint64-max"),
    pytest.param(Bad("/v1/identify", const(b'{"userId": "u", "context": {"traits": {"n": 99999999999999999999}}}'), 400, "context.traits.n"), id="context-traits-int-past-64-bits"),
    pytest.param(Bad("/v1/track", const(b'{"userId": 123456789012345678901234567890, "event": "e"}'), 400, "userId", reason_contains="64-bit"), id="userId-int-past-64-bits"),
    pytest.param(Bad("/v1/track", const(b'{"userId": "u", "event": "e", "integrations": {"All": 1e400}}'), 400, "integrations.All"), id="integrations-float-overflow"),
    pytest.param(Bad("/v1/track", msg(userId="u", event="e", integrations=[1]), 400, "integrations"), id="integrations-not-an-object"),
    pytest.param(Bad("/v1/track", msg(userId="u", event="e", messageId="m" * 300), 400, "messageId"), id="messageId-too-long"),
    pytest.param(Bad("/v1/batch", const(b'{"batch": [{"type": "track", "userId": "u", "event": "e"}], "context": {"s": "\xff"}}'), 400, "context.s"), id="batch-context-invalid-utf8"),
    pytest.param(Bad("/v1/batch", const(b'{"batch": [{"type": "track", "userId": "u", "event": "e"}], "context": {"n": 1e400}}'), 400, "context.n"), id="batch-context-float-overflow"),
    pytest.param(Bad("/v1/batch", const(b'{"batch": [{"type": "track", "userId": "u", "event": "e"}], "integrations": {"x": 99999999999999999999}}'), 400, "integrations.x"), id="batch-integrations-int-past-64-bits"),
    pytest.param(Bad("/v1/batch", const(b'{"batch": [{"type": "track", "userId": "u", "event": "e", "context": {"s": "\xff"}}]}'), 400, "batch[0].context.s"), id="batch-item-context-invalid-utf8"),
    # -- credentials
    pytest.param(Bad("/v1/track", msg(**GOOD), 401, "writeKey", auth="wrong"), id="wrong-write-key"),
    pytest.param(Bad("/v1/track", msg(**GOOD), 401, "writeKey", auth="none"), id="missing-write-key"),
    pytest.param(Bad("/v1/batch", batch({"type": "track", **GOOD}), 401, "writeKey", auth="none"), id="missing-write-key-batch"),
    pytest.param(Bad("/v1/track", msg(**GOOD), 401, "Authorization", auth="bearer"), id="write-key-with-bearer-scheme"),
    pytest.param(Bad("/v1/track", msg(**GOOD), 401, "Authorization", auth="garbage"), id="basic-auth-not-base64"),
    pytest.param(Bad("/v1/track", msg(**GOOD), 401, "writeKey", auth="token"), id="api-token-as-write-key"),
    pytest.param(Bad("/v1/track", msg(writeKey="wk_nope", **GOOD), 401, "writeKey", auth="none"), id="wrong-write-key-in-body"),
    pytest.param(Bad("/v1/batch", const(j({"writeKey": "wk_nope", "batch": [{"type": "track", **GOOD}]})), 401, "writeKey", auth="none"), id="wrong-write-key-in-batch-body"),
    pytest.param(Bad("/v1/track", msg(writeKey=123, **GOOD), 401, "writeKey", auth="none"), id="write-key-in-body-not-a-string"),
    # -- methods
    pytest.param(Bad("/v1/track", const(b""), 405, method="GET"), id="GET-track"),
    pytest.param(Bad("/v1/batch", const(b""), 405, method="PUT"), id="PUT-batch"),
    pytest.param(Bad("/v1/identify", const(b""), 405, method="DELETE"), id="DELETE-identify"),
    # -- known bugs
    pytest.param(
        Bad("/v1/track", with_key(userId="u", event="e", properties={"p": BIG}), 413, "", auth="none"),
        id="write-key-in-body-and-event-over-32KB",
    ),
    pytest.param(
        Bad("/v1/track", with_key(userId=["u"], event="e"), 400, "userId", auth="none"),
        id="write-key-in-body-and-userId-list",
    ),
    pytest.param(
        Bad("/v1/batch", lambda ws: j({"writeKey": ws.write_key, "context": "app", "batch": [{"type": "track", **GOOD}]}), 400, "context", auth="none"),
        id="write-key-in-batch-body-and-context-string",
    ),
    pytest.param(
        Bad("/v1/batch", batch({"type": "track", "userId": "u-deep-ctx", "event": "e"}, context=nested_dict(40)), 400, "context"),
        id="batch-context-nested-40",
    ),
]  # fmt: skip


def _auth(case: Bad, ws: Any) -> dict[str, Any]:
    if case.auth == "basic":
        return {"auth": (ws.write_key, "")}
    if case.auth == "wrong":
        return {"auth": ("wk_" + uuid.uuid4().hex, "")}
    if case.auth == "token":
        return {"auth": (ws.api_token, "")}
    if case.auth == "bearer":
        return {"headers": {"Authorization": f"Bearer {ws.write_key}"}}
    if case.auth == "garbage":
        return {"headers": {"Authorization": "Basic %%%not-base64%%%"}}
    return {}


def send(case: Bad, ws: Any) -> httpx.Response:
    kwargs = _auth(case, ws)
    headers = {**kwargs.pop("headers", {}), **case.headers}
    return httpx.request(
        case.method, f"{ws.url}{case.path}", content=case.body(ws), headers=headers, timeout=30, **kwargs
    )


@pytest.mark.parametrize("case", CASES)
def test_bad_ingest_request_gets_the_right_status_and_an_error_naming_the_field(workspace, case):
    r = send(case, workspace)
    err = assert_one_error_shape(r, case.status)
    if case.field is not None:
        fields = [e["field"] for e in err.get("errors", [])]
        assert case.field in fields, err
        if case.field and not any("index" in e for e in err["errors"]):
            assert case.field in err["message"], err
    if case.reason_contains:
        texts = [err["message"], *(e["reason"] for e in err.get("errors", []))]
        assert any(case.reason_contains in t for t in texts), err
    if case.status == 401:
        assert r.headers["www-authenticate"].startswith("Basic")


def test_nothing_from_the_bad_requests_was_stored(workspace):
    # Runs after the table: no refused request may have created a person.
    with workspace.client() as c:
        body = c.get("/api/v1/people", params={"limit": 1000}).json()
    stored = {uid for p in body["people"] for uid in p["identifiers"].get("user_id", [])}
    assert not stored & {"u", "u-good"}, stored


def test_batch_with_good_and_bad_items_stores_the_good_ones_and_lists_the_rejected_by_index(workspace):
    user = "u-" + uuid.uuid4().hex[:8]
    items = [
        {"type": "track", "userId": user, "event": "view", "messageId": f"{user}-0"},
        {"type": "track", "userId": user, "messageId": f"{user}-1"},  # no event
        {"type": "page", "userId": user, "name": "Top", "messageId": f"{user}-2"},
        {"type": "purchase", "userId": user, "messageId": f"{user}-3"},  # unknown type
        {"type": "identify", "userId": [user], "messageId": f"{user}-4"},  # wrong type
        {"type": "track", "event": "orphan", "messageId": f"{user}-5"},  # no ids
        {"type": "identify", "userId": user, "traits": {"rank": "gold"}, "messageId": f"{user}-6"},
    ]
    r = workspace.ingest("/v1/batch", {"batch": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert body["accepted"] == 3
    assert body["duplicates"] == 0
    rejected = {(e["index"], e["field"]) for e in body["rejected"]}
    assert rejected == {
        (1, "batch[1].event"),
        (3, "batch[3].type"),
        (4, "batch[4].userId"),
        (5, "batch[5].userId"),
    }
    assert all(e["reason"] for e in body["rejected"])

    person = workspace.person("user_id", user)
    assert person["traits"] == {"rank": "gold"}
    events = workspace.timeline(person["person_id"])
    assert sorted(e["message_id"] for e in events) == [f"{user}-0", f"{user}-2", f"{user}-6"]


def test_a_batch_with_unstorable_items_keeps_the_good_ones_and_names_each_bad_value(workspace):
    user = "u-" + uuid.uuid4().hex[:8]
    good = [f"{user}-{i}" for i in (0, 2, 4)]
    body = (
        b'{"batch": ['
        b'{"type": "track", "userId": "%(u)s", "event": "view", "messageId": "%(u)s-0"},'
        b'{"type": "track", "userId": "%(u)s", "event": "view", "messageId": "%(u)s-1", "context": {"s": "\xff"}},'
        b'{"type": "track", "userId": "%(u)s", "event": "buy", "messageId": "%(u)s-2", "properties": {"revenue": 1200}},'
        b'{"type": "track", "userId": "%(u)s", "event": "buy", "messageId": "%(u)s-3", "properties": {"n": 1e400}},'
        b'{"type": "identify", "userId": "%(u)s", "messageId": "%(u)s-4", "traits": {"rank": "gold"}},'
        b'{"type": "identify", "userId": "%(u)s", "messageId": "%(u)s-5", "traits": {"n": 99999999999999999999}}'
        b"]}"
    ) % {b"u": user.encode()}
    r = httpx.post(f"{workspace.url}/v1/batch", content=body, auth=(workspace.write_key, ""), timeout=30)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["accepted"] == 3
    assert {(e["index"], e["field"]) for e in answer["rejected"]} == {
        (1, "batch[1].context.s"),
        (3, "batch[3].properties.n"),
        (5, "batch[5].traits.n"),
    }
    person = workspace.person("user_id", user)
    assert sorted(e["message_id"] for e in workspace.timeline(person["person_id"])) == good
    # the store behind it still answers: search, preview and the person's data
    with workspace.client() as c:
        assert c.get("/api/v1/people", params={"q": user}).status_code == 200
        assert c.get(f"/api/v1/people/{person['person_id']}/data").status_code == 200
        assert c.post("/api/v1/segments/preview", json={"rule": {"did": "buy"}}).status_code == 200
    # a bad item fixed and sent again with the same messageId is taken
    fixed = {"type": "track", "userId": user, "event": "view", "messageId": f"{user}-1", "context": {"s": "ok"}}
    assert workspace.ingest("/v1/batch", {"batch": [fixed]}).json() == {"success": True}


def test_batch_where_every_item_is_bad_is_400_listing_each_by_index(workspace):
    r = workspace.ingest(
        "/v1/batch",
        {
            "batch": [
                {"type": "track", "userId": "u"},
                {"type": "nope", "userId": "u"},
                {"type": "group", "userId": "u"},
            ]
        },
    )
    err = assert_one_error_shape(r, 400)
    assert {(e["index"], e["field"]) for e in err["errors"]} == {
        (0, "batch[0].event"),
        (1, "batch[1].type"),
        (2, "batch[2].groupId"),
    }
    assert "3" in err["message"]


def test_every_bad_field_of_one_message_is_reported_at_once(workspace):
    r = workspace.ingest("/v1/track", {"userId": "u" * 300, "context": {"channel": "!!"}})
    err = assert_one_error_shape(r, 400)
    assert {e["field"] for e in err["errors"]} >= {"userId", "event", "context.channel"}


ADMIN_ENDPOINTS = [
    ("GET", "/api/v1/workspace"),
    ("GET", "/api/v1/people"),
    ("GET", "/api/v1/people/lookup?type=user_id&value=U-1"),
    ("GET", "/api/v1/people/p_00000000000000000000"),
    ("GET", "/api/v1/people/p_00000000000000000000/events"),
    ("DELETE", "/api/v1/people/p_00000000000000000000"),
]

ADMIN_AUTH = {
    "no-authorization": lambda ws: {},
    "unknown-api-token": lambda ws: {"Authorization": "Bearer tsk_" + uuid.uuid4().hex},
    "write-key-as-bearer": lambda ws: {"Authorization": f"Bearer {ws.write_key}"},
    "api-token-as-basic": lambda ws: {
        "Authorization": "Basic " + base64.b64encode(f"{ws.api_token}:".encode()).decode()
    },
    "bearer-without-token": lambda ws: {"Authorization": "Bearer"},
    "token-scheme": lambda ws: {"Authorization": f"Token {ws.api_token}"},
}


@pytest.mark.parametrize("auth", list(ADMIN_AUTH.values()), ids=list(ADMIN_AUTH))
@pytest.mark.parametrize(
    ("method", "path"), ADMIN_ENDPOINTS, ids=[f"{m} {p.split('?')[0]}" for m, p in ADMIN_ENDPOINTS]
)
def test_admin_endpoints_refuse_missing_unknown_or_wrong_credentials_with_401(workspace, method, path, auth):
    r = httpx.request(method, f"{workspace.url}{path}", headers=auth(workspace), timeout=30)
    err = assert_one_error_shape(r, 401)
    assert err["code"] == "unauthorized"
    assert [e["field"] for e in err["errors"]] == ["Authorization"]
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/api/v1/people/lookup", {"type": "user_id"}, 400, "value"),
        ("/api/v1/people/lookup", {"value": "x"}, 400, "type"),
        ("/api/v1/people", {"limit": 0}, 400, "limit"),
        ("/api/v1/people", {"limit": 5000}, 400, "limit"),
        ("/api/v1/people", {"limit": "ten"}, 400, "limit"),
        ("/api/v1/people", {"cursor": "not-a-cursor!"}, 400, "cursor"),
        ("/api/v1/people", {"trait": ""}, 400, "trait"),
        ("/api/v1/people", {"cursor": "LTE"}, 400, "cursor"),  # -1: not an offset this API wrote
        ("/api/v1/nothing-here", {}, 404, None),
    ],
)
def test_bad_admin_queries_get_an_error_naming_the_parameter(workspace, path, params, status, field):
    with workspace.client() as c:
        r = c.get(path, params=params)
    err = assert_one_error_shape(r, status)
    if field:
        assert field in [e["field"] for e in err["errors"]], err


JSON = {"Content-Type": "application/json"}
ADMIN_BODIES = [
    # (method, path, body bytes, headers, status, a field the errors name)
    ("PUT", "/api/v1/computed-traits/x", b'{"event": "buy", "agg": {}}', JSON, 400, "agg"),
    ("PUT", "/api/v1/computed-traits/x", b'{"event": "buy", "agg": ["sum"], "window": {}}', JSON, 400, "agg"),
    ("PUT", "/api/v1/segments/x", b'{"rule": {"trait": "a", "op": "gt", "value": NaN}}', JSON, 400, "rule.value"),
    ("PUT", "/api/v1/segments/x", b'{"rule": {"trait": "a", "op": "lt", "value": -Infinity}}', JSON, 400, "rule.value"),
    ("PUT", "/api/v1/segments/x", b'{"rule": {"trait": "\\ud800", "op": "exists"}}', JSON, 400, "rule.trait"),
    ("PUT", "/api/v1/segments/x", b'{"rule": {"did": "buy"}, "description": "\\udfff"}', JSON, 400, "description"),
    ("PUT", "/api/v1/segments/x", b'{"rule": {"trait": "a", "op": "eq", "value": 1e999}}', JSON, 400, "rule.value"),
    ("PUT", "/api/v1/segments/x", b'{"rule": {"did": "buy", "since": "0001-01-01"}}', JSON, 400, "rule.since"),
    ("PUT", "/api/v1/segments/x", b'{"rule": {"did": "buy", "where": {"": 1}}}', JSON, 400, "rule.where"),
    ("PUT", "/api/v1/segments/x", b'{"rule": ' + b'{"not": ' * 40 + b'{"did": "buy"}' + b"}" * 41, JSON, 400, None),
    ("PUT", "/api/v1/segments/x", b'{"rule": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", JSON, 400, "body"),
    ("PUT", "/api/v1/segments/x", b'{"rule": {"did": "buy"}}', {}, 400, "body"),  # no Content-Type: not JSON
    ("PUT", "/api/v1/segments/x", b'{"rule": {"did": "buy"},}', JSON, 400, "body"),
    ("PUT", "/api/v1/segments/x", b'{"rule": "\xff"}', JSON, 400, "body"),
    ("PUT", "/api/v1/segments/x", b'{"rule": {"did": "buy"}, "x": "' + b"a" * 1_100_000 + b'"}', JSON, 413, "body"),
    ("PUT", "/api/v1/segments/bad name", b'{"rule": {"did": "buy"}}', JSON, 400, "name"),
    ("PUT", "/api/v1/segments/overlap", b'{"rule": {"did": "buy"}}', JSON, 400, "name"),  # GET is the report
    ("PUT", "/api/v1/segments/x", b'{"rule": {"did": "buy"}, "description": 1}', JSON, 400, "description"),
    ("POST", "/api/v1/segments/preview", b'{"rule": {"did": "buy"}, "dialect": "\\ud800"}', JSON, 400, "dialect"),
    ("POST", "/api/v1/segments/preview", b'{"rule": {"did": "buy"}, "dialect": "mysql"}', JSON, 400, "dialect"),
    ("POST", "/api/v1/segments/preview", b'{"rule": {"segment": "nothing"}}', JSON, 400, "rule.segment"),
    ("POST", "/api/v1/segments/preview", b'{"rule": {"did": "buy"}, "sample": 1.5}', JSON, 400, "sample"),
    ("POST", "/api/v1/segments/preview", b'{"rule": [{"did": "buy"}]}', JSON, 400, "rule"),
    ("POST", "/api/v1/apply", b'{"definitions": [{"kind": "segment", "name": "\\ud800", "rule": 1}]}', JSON, 400,
     "definitions[0].name"),
    ("POST", "/api/v1/apply", b'{"definitions": {"kind": "segment"}}', JSON, 400, "definitions"),
    ("POST", "/api/v1/people", b"{}", JSON, 405, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "field"),
    ADMIN_BODIES,
    ids=[f"{m} {p}" for m, p, *_ in ADMIN_BODIES],
)
def test_bad_admin_bodies_get_the_right_status_and_an_error_naming_the_field(
    workspace, method, path, body, headers, status, field
):
    with workspace.client() as c:
        r = c.request(method, path, content=body, headers=headers)
    err = assert_one_error_shape(r, status)
    if field:
        assert field in [e["field"] for e in err.get("errors", [])], err
    assert r.headers["x-content-type-options"] == "nosniff"
    if status == 413:
        assert r.headers["connection"] == "close"  # the rest of the body was not read


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/api/v1/people", "GET"),
        ("OPTIONS", "/api/v1/segments/x", "DELETE, GET, PUT"),  # every method of the path, not the first route's
        ("PUT", "/api/v1/segments/x/members", "GET"),
        ("PATCH", "/api/v1/segments/overlap", "GET"),  # the most literal path: the report
        ("GET", "/api/v1/apply", "POST"),
    ],
)
def test_a_method_the_path_does_not_have_is_405_naming_every_method_it_has(workspace, method, path, allow):
    with workspace.client() as c:
        r = c.request(method, path)
    assert_one_error_shape(r, 405)
    assert r.headers["allow"] == allow


def test_bad_timeline_queries_name_the_parameter(workspace):
    user = "u-" + uuid.uuid4().hex[:8]
    assert workspace.ingest("/v1/track", {"userId": user, "event": "e"}).status_code == 200
    pid = workspace.person("user_id", user)["person_id"]
    with workspace.client() as c:
        for params, fld in [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"cursor": "@@@"}, "cursor")]:
            err = assert_one_error_shape(c.get(f"/api/v1/people/{pid}/events", params=params), 400)
            assert fld in [e["field"] for e in err["errors"]], err


def test_server_is_still_up_and_logged_no_traceback_after_all_the_bad_input(server):
    r = httpx.get(f"{server.url}/health", timeout=10)
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    log = server.log_text()
    assert "Traceback" not in log, log[-5000:]
    assert "ingest failed" not in log
    assert "Exception in ASGI application" not in log
