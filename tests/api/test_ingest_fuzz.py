"""Fuzzing the public ingest endpoints of a real server: never a 5xx, never a broken workspace.

The write key is public (it is in every page that carries the tag), so anyone can send
anything. Thousands of hostile requests (`tests/fuzzing.py`) go to a real
`tsunagu serve`; each must get a status a correct server may give, in the one error
shape; afterwards the workspace must work for everyone: a good event is taken and
read back, search, the person's data and a segment preview answer, and the server
logged no traceback and never reopened the workspace. A longer run: `bench/fuzz.py`.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..fuzzing import hostile_request
from .conftest import new_workspace
from .error_shape import assert_one_error_shape

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzz_workspace(server: Any) -> Any:
    return new_workspace(server)


@pytest.fixture(scope="module")
def http() -> Any:
    with httpx.Client(timeout=30) as client:
        yield client


def check_answer(r: httpx.Response, expect: frozenset[int], reproducer: str) -> None:
    assert r.status_code in expect, f"{r.status_code} {r.text[:500]}\n{reproducer}"
    if r.status_code >= 400:
        assert_one_error_shape(r, r.status_code)


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(rng=st.randoms(use_true_random=False))
def test_hostile_ingest_requests_get_only_clean_answers(fuzz_workspace: Any, http: Any, rng: random.Random) -> None:
    req = hostile_request(rng, fuzz_workspace.write_key)
    r = http.request(req.method, fuzz_workspace.url + req.path, headers=req.headers, content=req.body)
    check_answer(r, req.expect, req.reproducer(fuzz_workspace.url))


def test_after_the_fuzz_the_workspace_works_for_everyone(server: Any, fuzz_workspace: Any) -> None:
    ws = fuzz_workspace
    user = f"after-fuzz-{uuid.uuid4().hex[:8]}"
    r = ws.ingest("/v1/track", {"userId": user, "event": "buy", "properties": {"revenue": 1200}})
    assert r.status_code == 200, r.text
    person = ws.person("user_id", user)
    assert [e["event"] for e in ws.timeline(person["person_id"])] == ["buy"]
    with ws.client() as c:
        assert c.get("/api/v1/people", params={"limit": 50}).status_code == 200
        assert c.get("/api/v1/people", params={"q": "ゴールド"}).status_code == 200
        assert c.get(f"/api/v1/people/{person['person_id']}/data").status_code == 200
        preview = c.post("/api/v1/segments/preview", json={"rule": {"did": "buy"}})
        assert preview.status_code == 200 and preview.json()["count"] >= 1
    other = new_workspace(server)  # and other workspaces on the same server
    assert other.ingest("/v1/track", {"userId": user, "event": "view"}).status_code == 200
    log = server.log_text()
    assert "Traceback" not in log, log[-5000:]
    assert "reopening after a storage error" not in log
    assert "could not be applied" not in log
