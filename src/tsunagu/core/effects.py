"""What the engine decides, as data: the runtime carries each effect to where it acts.

The engine's step (`core.step`) reads a person, an event and the catalog of definitions
and answers **effects**; it changes nothing but the person. The runtime around it
(`Engine`, then the pipeline) applies them: a segment's size moves with its entries
and exits, a timer goes into the timer index, and every effect with a place on the
person's timeline becomes a system entry there (`timeline_entry`). Campaigns and
journeys (next issues) act on the same effects: "when a person enters segment X" is a
`SegmentEntered`.

Every effect names its person and its cause: the message id of the event that caused it,
or `define:<ms>`, `tick:<ms>`, `undefine:<ms>` for a change of definitions or time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["Effect", "IdentityConflict", "Merged", "SegmentEntered", "SegmentExited", "TimerSet", "timeline_entry"]


@dataclass(slots=True)
class SegmentEntered:
    type: ClassVar[str] = "segment_enter"
    timeline: ClassVar[bool] = True

    person_id: str
    segment: str
    timestamp: int
    message_id: str  # the cause

    @property
    def properties(self) -> dict[str, Any]:
        return {"segment": self.segment}


@dataclass(slots=True)
class SegmentExited:
    type: ClassVar[str] = "segment_exit"
    timeline: ClassVar[bool] = True

    person_id: str
    segment: str
    timestamp: int
    message_id: str
    removed: bool = False  # the segment itself was deleted (its size goes with it)

    @property
    def properties(self) -> dict[str, Any]:
        return {"segment": self.segment, "removed": True} if self.removed else {"segment": self.segment}


@dataclass(slots=True)
class Merged:
    """Two persons turned out to be one: `person_id` survives, `merged_person_id` is now its alias."""

    type: ClassVar[str] = "merge"
    timeline: ClassVar[bool] = True

    person_id: str
    merged_person_id: str
    identifiers: dict[str, list[str]]
    first_seen: int
    events: int
    timestamp: int
    message_id: str

    @property
    def properties(self) -> dict[str, Any]:
        return {"merged_person_id": self.merged_person_id, "identifiers": self.identifiers,
                "first_seen": self.first_seen, "events": self.events}  # fmt: skip


@dataclass(slots=True)
class IdentityConflict:
    """A link refused: it would give a person two values of a unique identifier (docs/identity.md)."""

    type: ClassVar[str] = "identity_conflict"
    timeline: ClassVar[bool] = True

    person_id: str
    record: dict[str, Any]  # what the person's `conflicts` keep
    timestamp: int
    message_id: str

    @property
    def properties(self) -> dict[str, Any]:
        return self.record


@dataclass(slots=True)
class TimerSet:
    """Re-check the person's time-based segments on `day` (days since 1970-01-01, local);
    None: no re-check is due. Decided on `today`; `exact`: `day` is the person's computed
    window edge (computed at most once a person a day), not just "tomorrow"."""

    type: ClassVar[str] = "timer"
    timeline: ClassVar[bool] = False

    person_id: str
    day: int | None
    today: int
    exact: bool = False


Effect = SegmentEntered | SegmentExited | Merged | IdentityConflict | TimerSet


def timeline_entry(e: Effect) -> tuple[str, str, int, str, dict[str, Any]]:
    """An effect as the timeline keeps it: (person, type, timestamp, cause, properties)."""
    assert e.timeline and not isinstance(e, TimerSet)
    return (e.person_id, e.type, e.timestamp, e.message_id, e.properties)
