"""Workspace configuration the engine reads (pure data)."""

from __future__ import annotations

import msgspec

__all__ = ["IDENTIFIER_TYPES", "WorkspaceConfig"]

# Built-in identifier types; any other `context.externalIds[].type` becomes a custom type.
IDENTIFIER_TYPES = (
    "user_id",
    "anonymous_id",
    "email",
    "phone",
    "line_id",
    "pos_customer_id",
    "device_token",
)


class WorkspaceConfig(msgspec.Struct, kw_only=True):
    """What one workspace declares. Stored as JSON in the control database."""

    #: identify traits that are identifiers: trait name -> identifier type
    identifier_traits: dict[str, str] = msgspec.field(
        default_factory=lambda: {"email": "email", "phone": "phone", "line_id": "line_id"}
    )
    #: identifier types a person may hold at most one value of; two people holding
    #: different values are never merged (the conflict is recorded instead)
    unique_identifiers: list[str] = msgspec.field(default_factory=lambda: ["user_id"])
    #: messageId de-duplication window
    dedupe_days: int = 7
    #: the workspace's time zone (reports, windows)
    timezone: str = "Asia/Tokyo"
    #: define the retail computed traits (core.computed.RETAIL) when the workspace starts
    retail_traits: bool = True
