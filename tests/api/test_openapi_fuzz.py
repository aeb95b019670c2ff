"""Schemathesis against the real server: every operation answers as its OpenAPI description says.

The description comes from the running server (`/openapi.json`), the requests go to it,
over a workspace holding a few people, their events and a segment. Each operation gets
the examples, the coverage cases (boundaries, wrong types, missing parameters, other
methods) and a bounded, deterministic number of generated cases, checked for: no server
error, a documented status code, a documented content type and a response matching its
schema (headers too), and, with the token left out, a 401.

Not checked: whether every schema-valid request is accepted, and every schema-invalid
one refused (`positive_data_acceptance`, `negative_data_rejection`): what makes a rule
valid (its fields depend on its node, names on the workspace's definitions, a cursor on
what this API wrote) is checked by the parsers, not expressible in the schema.

A longer run by hand, on a server of your own:

    st run http://127.0.0.1:PORT/openapi.json -H "Authorization: Bearer TOKEN" \\
        --max-examples 300 --checks all --exclude-checks positive_data_acceptance,negative_data_rejection
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis

from .conftest import new_workspace

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "ignored_auth",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
]


def _config(examples: int, auth: dict[str, Any] | None, headers: dict[str, str] | None = None,
            operations: list[dict[str, Any]] | None = None) -> schemathesis.Config:  # fmt: skip
    checks: dict[str, Any] = {"enabled": False} | {name: {"enabled": True} for name in CHECKS}
    data: dict[str, Any] = {
        "seed": 20261120,
        "generation": {"max-examples": examples, "deterministic": True},  # derandomized: no database
        "checks": checks,
        "phases": {"stateful": {"enabled": False}},
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        "request-timeout": 30,
    }
    if auth:
        data["auth"] = auth
    if headers:
        data["headers"] = headers
    if operations:
        data["operations"] = operations
    return schemathesis.Config.from_dict(data)


@pytest.fixture(scope="module")
def populated(server: Any) -> Any:
    """A workspace with three people, their events and a segment (ready: back-filled)."""
    ws = new_workspace(server)
    batch = [
        {"type": "identify", "userId": "U-1", "traits": {"member_rank": "gold", "email": "hanako@example.jp"}},
        {"type": "track", "userId": "U-1", "event": "buy", "properties": {"revenue": 12000, "items": [{"sku": "A"}]},
         "context": {"channel": "store", "store": {"id": "S1"}}},
        {"type": "track", "userId": "U-2", "event": "view", "properties": {"category": "tops"}},
        {"type": "page", "anonymousId": "a-3", "name": "Top", "properties": {"path": "/"}},
    ]  # fmt: skip
    assert ws.ingest("/v1/batch", {"batch": batch}).status_code == 200
    with ws.client() as c:
        assert c.put("/api/v1/segments/buyers", json={"rule": {"did": "buy"}}).status_code == 200
        deadline = time.monotonic() + 30
        while c.get("/api/v1/segments/buyers").json()["status"] != "ready":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    return ws


@pytest.fixture(scope="module")
def authenticated(server: Any, populated: Any) -> Any:
    # real values for the parameters that name things, so those operations reach past 404
    operations = [
        {"include-name": "GET /api/v1/people/lookup", "parameters": {"type": "user_id", "value": "U-1"}},
        {"include-name": "GET /api/v1/segments/overlap", "parameters": {"a": "buyers", "b": "buyers"}},
        {"include-path-regex": "^/api/v1/segments/\\{name\\}/", "parameters": {"name": "buyers"}},
    ]
    auth = {"openapi": {"apiToken": {"bearer": populated.api_token}}}
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=_config(20, auth, operations=operations))


@pytest.fixture(scope="module")
def garbage_token(server: Any, populated: Any) -> Any:
    headers = {"Authorization": "Bearer tsk_not-a-token"}
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=_config(3, None, headers=headers))


#: cases sent, by operation and by whether the token was right
SENT: Counter[tuple[str, bool]] = Counter()

with_token = schemathesis.pytest.from_fixture("authenticated")
without_token = schemathesis.pytest.from_fixture("garbage_token").exclude(path="/health")


@with_token.parametrize()
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    SENT[(case.operation.label, True)] += 1
    case.call_and_validate()


@without_token.parametrize()
def test_every_operation_refuses_a_wrong_token_as_documented(case: schemathesis.Case) -> None:
    SENT[(case.operation.label, False)] += 1
    response = case.call_and_validate()
    assert response.status_code in (400, 401, 405, 413), response.text  # 400/413: the body is read first


def test_the_server_logged_no_traceback_after_the_fuzzing(server: Any) -> None:
    operations = {label for label, _ in SENT}
    assert len(operations) >= 23, sorted(operations)  # every operation was run, with a token
    assert all(SENT[(label, True)] >= 10 for label in operations if label != "GET /health"), SENT
    print(f"schemathesis: {sum(SENT.values())} cases over {len(operations)} operations")
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    log = server.log_text()
    assert "Traceback" not in log, log[-5000:]
    assert "Exception in ASGI application" not in log
