"""Paths in errors, under a prefix or relative to a definition's body."""

from __future__ import annotations

from ..errors import FieldError, InvalidInput


def under(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def relative(exc: InvalidInput, path: str) -> InvalidInput:
    """`exc` with its paths as written under `path` ("" leaves ".event" as "event")."""
    if path:
        return exc
    return InvalidInput.for_fields([FieldError(e.field.lstrip(".") or "body", e.reason, e.index) for e in exc.errors])
