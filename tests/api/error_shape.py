"""The one error shape, as a JSON Schema and the one helper every test of an error calls.

Ingest, the admin API and the admin UI's JSON endpoints all answer it
(`TsunaguError.to_dict()`; docs/api.md#errors).
"""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema

__all__ = ["ERROR_SCHEMA", "assert_one_error_shape"]

#: the one shape: `error` holds it all; `code` and `message` are repeated at the top for the
#: Segment-spec SDKs (analytics-python, rudder-sdk-python) that read them there
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["error", "code", "message"],
    "properties": {
        "code": {"type": "string", "minLength": 1},
        "message": {"type": "string", "minLength": 1},
        "error": {
            "type": "object",
            "additionalProperties": False,
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "code": {"type": "string", "pattern": "^[a-z][a-z_]*$"},
                "message": {"type": "string", "minLength": 1},
                "errors": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["field", "reason"],
                        "properties": {
                            "field": {"type": "string"},
                            "reason": {"type": "string", "minLength": 1},
                            "index": {"type": "integer", "minimum": 0},
                        },
                    },
                },
            },
        },
    },
}


def assert_one_error_shape(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """`r` is an error in the one shape, with `status`, naming `field` if given; its `error`."""
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("application/json"), r.headers["content-type"]
    assert r.headers["x-content-type-options"] == "nosniff"
    body = r.json()
    jsonschema.validate(body, ERROR_SCHEMA)
    err = body["error"]
    assert err["status"] == status
    assert (body["code"], body["message"]) == (err["code"], err["message"])
    if field is not None:
        assert field in [e["field"] for e in err.get("errors", [])], err
    return err
