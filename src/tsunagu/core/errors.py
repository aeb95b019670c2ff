"""Errors. One base class; every error names the field and the reason.

TsunaguError                 500  a defect (internal_error)
├── InvalidInput        400  a field is missing or has the wrong type/value
│   └── PayloadTooLarge 413  an event over 32 KB or a batch over 500 KB
├── Unauthorized        401  missing or wrong write key / token / session
├── Forbidden           403  credentials valid, but not for this
├── NotFound            404
├── MethodNotAllowed    405  the path exists, not with this method
├── Conflict            409  the change contradicts the workspace's state (another definition reads it)
└── Unavailable         503  storage could not make the event durable; the workspace is recovering

`TsunaguError.to_dict()` is the one error shape every HTTP surface answers (ingest, the
admin API, the admin UI's JSON endpoints):

    {"error": {"status": 400, "code": "invalid_input", "message": "userId: must be a string",
               "errors": [{"field": "userId", "reason": "must be a string", "index": 3}]},
     "code": "invalid_input", "message": "userId: must be a string"}

`errors` is there when there are fields to name; `index` for an item of a list. The
top-level `code` and `message` repeat the error's: the Segment-spec SDKs read them there
(rudder-sdk-python raises KeyError without them), so every surface has them, and one
reader serves every client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Conflict",
    "FieldError",
    "Forbidden",
    "InvalidInput",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "TsunaguError",
    "Unauthorized",
    "Unavailable",
]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field: `field` is a dotted path (`batch[3].userId`)."""

    field: str
    reason: str
    index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"field": self.field, "reason": self.reason}
        if self.index is not None:
            d["index"] = self.index
        return d


@dataclass
class TsunaguError(Exception):
    message: str
    errors: list[FieldError] = field(default_factory=list)
    status = 500
    code = "internal_error"

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def to_dict(self) -> dict[str, Any]:
        """The one error shape (see the module's docstring)."""
        body: dict[str, Any] = {"status": self.status, "code": self.code, "message": self.message}
        if self.errors:
            body["errors"] = [e.to_dict() for e in self.errors]
        return {"error": body, "code": self.code, "message": self.message}

    @classmethod
    def for_field(cls, field_name: str, reason: str) -> TsunaguError:
        return cls(f"{field_name}: {reason}" if field_name else reason, [FieldError(field_name, reason)])

    @classmethod
    def for_fields(cls, errors: list[FieldError]) -> TsunaguError:
        """One error listing every bad field (`field: reason; field: reason`)."""
        return cls("; ".join(f"{e.field}: {e.reason}" for e in errors), errors)


class InvalidInput(TsunaguError):
    status = 400
    code = "invalid_input"


class PayloadTooLarge(InvalidInput):
    status = 413
    code = "payload_too_large"


class Unauthorized(TsunaguError):
    status = 401
    code = "unauthorized"


class Forbidden(TsunaguError):
    status = 403
    code = "forbidden"


class NotFound(TsunaguError):
    status = 404
    code = "not_found"


class MethodNotAllowed(TsunaguError):
    status = 405
    code = "method_not_allowed"


class Conflict(TsunaguError):
    status = 409
    code = "conflict"


class Unavailable(TsunaguError):
    status = 503
    code = "unavailable"
