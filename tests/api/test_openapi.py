"""The OpenAPI description tells the truth about errors: every operation lists the statuses
it can answer, each with the one `Error` schema, and the error bodies match that schema."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest

from tsunagu.core.errors import Conflict, FieldError, InvalidInput, NotFound, TsunaguError, Unauthorized


@pytest.fixture(scope="module")
def spec(server: Any) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/openapi.json", timeout=10)
    assert r.status_code == 200
    return r.json()


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, item in spec["paths"].items() for m, op in item.items()]


def _error_schema(spec: dict[str, Any]) -> dict[str, Any]:
    return {"$ref": "#/components/schemas/Error", "components": spec["components"]}


def test_every_operation_lists_the_errors_it_can_answer_with_the_one_error_schema(spec: dict[str, Any]) -> None:
    for method, path, op in _operations(spec):
        statuses = set(op["responses"])
        assert "422" not in statuses, (method, path)  # validation answers 400
        assert "500" in statuses, (method, path)
        if path != "/health":
            assert op["security"] == [{"apiToken": []}], (method, path)
            assert {"401", "503"} <= statuses, (method, path)
        if "requestBody" in op or any(p["in"] == "query" for p in op.get("parameters", ())):
            assert "400" in statuses, (method, path)
        if "requestBody" in op:
            assert "413" in statuses, (method, path)
        # a person, a definition or a table that is not there (a PUT, an import create theirs)
        if (
            any(p["in"] == "path" for p in op.get("parameters", ()))
            and method != "PUT"
            and not path.endswith("/imports")
        ):
            assert "404" in statuses, (method, path)
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                assert response["content"] == {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                assert response["description"], (method, path, status)
    deletes = {p for m, p, _ in _operations(spec) if m == "DELETE" and "/people/" not in p}
    assert deletes == {"/api/v1/segments/{name}", "/api/v1/computed-traits/{name}", "/api/v1/tables/{name}"}
    for path in deletes - {"/api/v1/tables/{name}"}:
        assert "409" in spec["paths"][path]["delete"]["responses"]  # another definition reads it
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas


@pytest.mark.parametrize(
    "err",
    [
        InvalidInput.for_fields([FieldError("definitions[2].rule.op", "'like' is not one of eq", 2)]),
        InvalidInput.for_field("limit", "must be 1 to 1000"),
        Unauthorized.for_field("Authorization", "unknown API token"),
        NotFound("no such endpoint: GET /x"),
        Conflict.for_field("name", "read by segment 'vip'"),
        TsunaguError("internal error; see the server log"),
    ],
)
def test_the_error_schema_is_the_shape_every_error_has(spec: dict[str, Any], err: TsunaguError) -> None:
    jsonschema.validate(err.to_dict(), _error_schema(spec))


def test_real_error_bodies_match_the_error_schema(spec: dict[str, Any], workspace: Any) -> None:
    with workspace.client() as c:
        answers = [
            c.get("/api/v1/people", params={"limit": 0}),
            c.get("/api/v1/people/p_nobody"),
            c.put("/api/v1/segments/x", json={"rule": {"trait": "a", "op": "like"}}),
            c.post("/api/v1/apply", json={"definitions": [1, {"kind": "x"}]}),
            httpx.get(f"{workspace.url}/api/v1/workspace", timeout=10),
            c.post("/api/v1/people"),
        ]
    for r in answers:
        assert r.status_code >= 400, r.text
        assert r.headers["x-content-type-options"] == "nosniff"
        jsonschema.validate(r.json(), _error_schema(spec))


def test_health_and_the_description_need_no_token(server: Any) -> None:
    assert httpx.get(f"{server.url}/health", timeout=10).json()["status"] == "ok"
    r = httpx.get(f"{server.url}/openapi.json", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
