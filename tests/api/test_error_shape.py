"""One error shape on every surface: ingest (`/v1/*`), the admin API (`/api/v1/*`) and the
admin UI's JSON endpoints (what the builder's script fetches), on a real `tsunagu serve`.

Every error body, whoever raised it (our code, FastAPI's validation, Starlette's routing, the
body limit), validates against `ERROR_SCHEMA` (tests/api/error_shape.py), and the OpenAPI
`Error` schema says the same.
Before, the three surfaces answered three shapes: ingest repeated `code` and `message` at the
top (and its 405 and 500 did not), the admin API did not, and the UI answered
`{"errors": [...], "message": ...}`, a redirect to the login page without a session, and
Starlette's plain text for a wrong method.
"""

# The CASES tables keep one request a line, however long.
# ruff: noqa: E501

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi import FastAPI
from starlette.exceptions import HTTPException

from tsunagu.api.errors import install_error_handlers
from tsunagu.storage.control import ControlStore

from .error_shape import ERROR_SCHEMA, assert_one_error_shape

PASSWORD = "correct horse battery"
BIG_UI = b'{"rule": "' + b"x" * (1024 * 1024 + 10) + b'"}'  # over the admin API's 1 MB
BIG_INGEST = b'{"userId": "u", "event": "e", "properties": {"p": "' + b"x" * (600 * 1024) + b'"}}'  # over 500 KB


@dataclass
class Case:
    method: str
    path: str
    status: int
    code: str
    field: str | None = None
    body: bytes | None = None
    headers: dict[str, str] | None = None
    auth: str = "good"  # good | none | wrong


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def j(obj: Any) -> bytes:
    return json.dumps(obj).encode()


JSON = {"Content-Type": "application/json"}

# fmt: off
INGEST = [
    pytest.param(Case("POST", "/v1/track", 400, "invalid_input", "", b'{"userId": "u",}'), id="malformed-json"),
    pytest.param(Case("POST", "/v1/track", 400, "invalid_input", "event", j({"userId": "u", "event": 5})), id="wrong-type"),
    pytest.param(Case("POST", "/v1/identify", 400, "invalid_input", "userId", j({"traits": {}})), id="no-identity"),
    pytest.param(Case("POST", "/v1/batch", 400, "invalid_input", "batch[0].event", j({"batch": [{"type": "track", "userId": "u"}]})), id="batch-all-bad"),
    pytest.param(Case("POST", "/v1/batch", 400, "invalid_input", "batch", j({"batch": []})), id="batch-empty"),
    pytest.param(Case("POST", "/v1/track", 400, "invalid_input", "", b"not gzip", {"Content-Encoding": "gzip"}), id="bad-gzip"),
    pytest.param(Case("POST", "/v1/track", 401, "unauthorized", "writeKey", j({"userId": "u", "event": "e"}), auth="none"), id="no-write-key"),
    pytest.param(Case("POST", "/v1/track", 401, "unauthorized", "writeKey", j({"userId": "u", "event": "e"}), auth="wrong"), id="unknown-write-key"),
    pytest.param(Case("POST", "/v1/track", 401, "unauthorized", "Authorization", j({"userId": "u", "event": "e"}), {"Authorization": "Bearer x"}), id="not-basic-auth"),
    pytest.param(Case("GET", "/v1/track", 405, "method_not_allowed"), id="wrong-method"),
    pytest.param(Case("POST", "/v1/track", 413, "payload_too_large", None, BIG_INGEST), id="too-large"),
    pytest.param(Case("POST", "/v1/track", 413, "payload_too_large", None, gzip.compress(BIG_INGEST), {"Content-Encoding": "gzip"}), id="too-large-inflated"),
    pytest.param(Case("POST", "/v1/nope", 404, "not_found", None, j({})), id="unknown-path"),
    pytest.param(Case("GET", "/v1/projects/wk_nobody/settings", 404, "not_found", "writeKey"), id="unknown-settings"),
]

ADMIN = [
    pytest.param(Case("GET", "/api/v1/people", 401, "unauthorized", "Authorization", auth="none"), id="no-token"),
    pytest.param(Case("GET", "/api/v1/people", 401, "unauthorized", "Authorization", auth="wrong"), id="unknown-token"),
    pytest.param(Case("GET", "/api/v1/people?limit=abc", 400, "invalid_input", "limit"), id="query-validation"),
    pytest.param(Case("GET", "/api/v1/people/lookup?type=email", 400, "invalid_input", "value"), id="query-missing"),
    pytest.param(Case("PUT", "/api/v1/segments/s", 400, "invalid_input", "body", b"{", JSON), id="malformed-json"),
    pytest.param(Case("PUT", "/api/v1/segments/s", 400, "invalid_input", "body", j({"rule": {"did": "buy"}})), id="not-sent-as-json"),
    pytest.param(Case("PUT", "/api/v1/segments/s", 400, "invalid_input", "rule.within_days", j({"rule": {"did": "buy", "within_days": "x"}}), JSON), id="invalid-rule"),
    pytest.param(Case("POST", "/api/v1/apply", 400, "invalid_input", None, j({"definitions": 5}), JSON), id="body-validation"),
    pytest.param(Case("GET", "/api/v1/people/p_nobody", 404, "not_found"), id="unknown-person"),
    pytest.param(Case("GET", "/api/v1/nope", 404, "not_found"), id="unknown-endpoint"),
    pytest.param(Case("DELETE", "/api/v1/people", 405, "method_not_allowed"), id="wrong-method"),
    pytest.param(Case("POST", "/api/v1/segments/preview", 413, "payload_too_large", "body", BIG_UI, JSON), id="too-large"),
]

UI = [
    pytest.param(Case("POST", "/ui/segments/preview", 401, "unauthorized", "tsg_session", j({"rule": {"did": "buy"}}), JSON, auth="none"), id="no-session"),
    pytest.param(Case("POST", "/ui/segments/save", 401, "unauthorized", "tsg_session", j({"rule": {"did": "buy"}}), JSON, auth="wrong"), id="ended-session"),
    pytest.param(Case("POST", "/ui/segments/preview", 403, "forbidden", "X-CSRF-Token", j({"rule": {"did": "buy"}}), {"X-CSRF-Token": "wrong"}), id="wrong-csrf"),
    pytest.param(Case("GET", "/ui/segments/preview", 405, "method_not_allowed"), id="wrong-method"),
    pytest.param(Case("POST", "/ui/segments/preview", 400, "invalid_input", "body", b"{", JSON), id="malformed-json"),
    pytest.param(Case("POST", "/ui/segments/preview", 400, "invalid_input", "body", b"[]", JSON), id="not-an-object"),
    pytest.param(Case("POST", "/ui/segments/preview", 400, "invalid_input", "rule.within_days", j({"rule": {"did": "buy", "within_days": "x"}}), JSON), id="invalid-rule"),
    pytest.param(Case("POST", "/ui/segments/save", 400, "invalid_input", "name", j({"rule": {"did": "buy"}}), JSON), id="save-without-name"),
    pytest.param(Case("POST", "/ui/segments/save", 400, "invalid_input", "rule.all[0].op", j({"name": "s", "rule": {"all": [{"trait": "a", "op": "like", "value": 1}]}}), JSON), id="save-invalid-rule"),
    pytest.param(Case("POST", "/ui/segments/preview", 413, "payload_too_large", "body", BIG_UI, JSON), id="too-large"),
]
# fmt: on


@pytest.fixture(scope="module")
def ws(make_workspace: Callable[[], Any]) -> Any:
    return make_workspace()


@pytest.fixture(scope="module")
def ui(server: Any, ws: Any) -> Iterator[tuple[httpx.Client, str]]:
    """A logged-in UI client and its session's CSRF token."""
    store = ControlStore(server.data_dir / "control.sqlite")
    try:
        store.create_user(ws.name, "staff@example.jp", PASSWORD)
    finally:
        store.close()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/login").text)
        assert token
        form = {"csrf": token.group(1), "workspace": ws.name, "email": "staff@example.jp", "password": PASSWORD}
        assert c.post("/ui/login", data=form).status_code == 303
        csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/account").text)
        assert csrf
        yield c, csrf.group(1)


def _send(client: httpx.Client, case: Case, headers: dict[str, str]) -> httpx.Response:
    return client.request(case.method, case.path, content=case.body, headers={**headers, **(case.headers or {})})


def _check(r: httpx.Response, case: Case) -> None:
    err = assert_one_error_shape(r, case.status, case.field)
    assert err["code"] == case.code, err
    if case.status == 405:
        assert r.headers["allow"]


@pytest.mark.parametrize("case", INGEST)
def test_ingest_errors_have_the_one_shape(server: Any, ws: Any, case: Case) -> None:
    auth = {"good": basic(ws.write_key), "wrong": basic("wk_nobody"), "none": None}[case.auth]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = _send(c, case, {"Authorization": auth} if auth else {})
    _check(r, case)
    if case.status == 401:
        assert r.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize("case", ADMIN)
def test_admin_api_errors_have_the_one_shape(server: Any, ws: Any, case: Case) -> None:
    token = {"good": ws.api_token, "wrong": "tk_nobody", "none": None}[case.auth]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = _send(c, case, {"Authorization": f"Bearer {token}"} if token else {})
    _check(r, case)
    if case.status == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("case", UI)
def test_admin_ui_json_errors_have_the_one_shape(server: Any, ui: tuple[httpx.Client, str], case: Case) -> None:
    client, csrf = ui
    if case.auth == "good":
        _check(_send(client, case, {"X-CSRF-Token": csrf}), case)
        return
    cookies = {"tsg_session": "ended-" + uuid.uuid4().hex} if case.auth == "wrong" else {}
    with httpx.Client(base_url=server.url, cookies=cookies, timeout=30) as stranger:
        r = _send(stranger, case, {"X-CSRF-Token": csrf})
    _check(r, case)  # a 401 a script can read, not a redirect to the login page's HTML
    assert "location" not in r.headers


def test_a_conflict_has_the_one_shape(ws: Any) -> None:
    with ws.client() as c:
        assert c.put("/api/v1/segments/buyers", json={"rule": {"did": "buy"}}).status_code == 200
        assert c.put("/api/v1/segments/loyal", json={"rule": {"segment": "buyers"}}).status_code == 200
        r = c.delete("/api/v1/segments/buyers")
    assert assert_one_error_shape(r, 409)["code"] == "conflict"


# Statuses no endpoint of ours answers today, raised as FastAPI and Starlette do: the admin
# API's handlers (the same `install_error_handlers`) give them the one shape and a stable code.
RAISED = [(401, "unauthorized"), (403, "forbidden"), (413, "payload_too_large"), (415, "unsupported_media_type"),
          (422, "invalid_input"), (429, "too_many_requests"), (503, "unavailable")]  # fmt: skip


@pytest.mark.parametrize(("status", "code"), RAISED)
def test_statuses_starlette_raises_get_the_one_shape_and_our_codes(status: int, code: str) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise")
    async def _raise() -> None:
        raise HTTPException(status, headers={"Retry-After": "1"} if status in (429, 503) else None)

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as c:
            return await c.get("/raise")

    r = asyncio.run(get())
    expected = 400 if status == 422 else status  # validation is 400 on every surface, never FastAPI's 422
    err = assert_one_error_shape(r, expected)
    assert err["code"] == code


def test_the_openapi_error_schema_is_the_one_shape(server: Any) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    schema = {"$ref": "#/components/schemas/Error", "components": spec["components"]}
    body = {"error": {"status": 400, "code": "invalid_input", "message": "limit: too big",
                      "errors": [{"field": "limit", "reason": "too big", "index": 0}]},
            "code": "invalid_input", "message": "limit: too big"}  # fmt: skip
    jsonschema.validate(body, ERROR_SCHEMA)
    jsonschema.validate(body, schema)
    for missing in ("code", "message"):  # the copies at the top are required there too
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({k: v for k, v in body.items() if k != missing}, schema)
