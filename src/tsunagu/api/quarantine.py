"""`/api/v1/quarantine`: what the workspace could not take, for its admins.

Entries come from three places (docs/storage.md#the-quarantine): `engine` (an event the
engine failed on, refused to its sender), `analytics` (a row the analytics store could
not write; the event is in the log), `checkpoint` (a person checkpointed with adjusted
numbers) and `definition` (a stored definition that no longer parses, skipped on open).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ..core.ports import QUARANTINE_SOURCES
from .admin import Pipe, iso

__all__ = ["router"]

router = APIRouter()

Source = Literal["engine", "analytics", "checkpoint", "definition"]
assert set(Source.__args__) == set(QUARANTINE_SOURCES)  # type: ignore[attr-defined]


class QuarantineEntry(BaseModel):
    id: int = Field(description="newest first; pass the last one as `before` for the next page")
    at: str = Field(description="when it was set aside (ISO 8601, UTC)")
    source: Source
    ref: str = Field(description="the reference the sender's answer and the server log give", examples=["q-3f9a2c1b7e"])
    reason: str
    seq: int | None = Field(description="the log record (analytics rows)")
    message_id: str | None
    person_id: str | None = Field(description="the person now (merged ids resolve to the survivor)")
    body: str = Field(description="the event or row as JSON text (invalid UTF-8 shown as U+FFFD)")


class QuarantineOut(BaseModel):
    counts: dict[str, int] = Field(description="entries by source, all of them")
    entries: list[QuarantineEntry]
    next_before: int | None = Field(description="`before` for the next (older) page, if there is one")


@router.get("/api/v1/quarantine", response_model=QuarantineOut, tags=["workspace"])
async def quarantine(
    pipe: Pipe,
    source: Annotated[Source | None, Query(description="only entries from here")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, description="entries older than this id")] = None,
) -> dict[str, Any]:
    """What the workspace set aside: events the engine failed on, rows analytics could not write."""
    q = pipe.quarantine
    counts = await asyncio.to_thread(q.counts)
    rows = await asyncio.to_thread(q.entries, limit=limit + 1, source=source, before=before)
    more = len(rows) > limit
    rows = rows[:limit]
    for r in rows:
        r["at"] = iso(r["at"])
        r["body"] = r["body"].decode("utf-8", "replace")
        if r["person_id"]:
            r["person_id"] = pipe.engine.canonical(r["person_id"]) or r["person_id"]
    return {"counts": counts, "entries": rows, "next_before": rows[-1]["id"] if more and rows else None}
