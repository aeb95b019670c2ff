"""Workspace configuration the engine reads (pure data)."""

from __future__ import annotations

import msgspec

__all__ = ["IDENTIFIER_TYPES", "WorkspaceConfig"]

_HOUR_MS = 3_600_000

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
    #: messageId de-duplication window in hours (Segment's is 24; docs/ingest.md says
    #: why ours is a week)
    dedupe_hours: int = 168
    #: the older name of the window, in days; when set it wins over dedupe_hours, so a
    #: workspace configured before the window was in hours keeps its window
    dedupe_days: int | None = None
    #: the workspace's time zone (reports, windows)
    timezone: str = "Asia/Tokyo"
    #: define the retail computed traits (core.computed.RETAIL) when the workspace starts
    retail_traits: bool = True

    @property
    def dedupe_window_ms(self) -> int:
        hours = self.dedupe_days * 24 if self.dedupe_days is not None else self.dedupe_hours
        return hours * _HOUR_MS
