"""Segment reports: size over time, entries and exits per day, overlap, members and CSV.

Membership now comes from the engine (`person.segments`, always live). History comes
from the timeline: every entry and exit is a `segment_enter` / `segment_exit` row in the
analytics store's `events`, stamped with when it happened. The admin UI renders the same
functions, so the page and the API never disagree.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ..core.errors import InvalidInput, NotFound
from ..core.people import Person
from ..core.segments import day_of
from ..sql.reports import entered_at_query, history_days_query, members_at_query, segment_days_query
from .admin import Pipe, _decode_cursor, _encode_cursor, iso
from .errors import error_responses

if TYPE_CHECKING:
    from ..pipeline import WorkspacePipeline

__all__ = [
    "CSV_COLUMNS",
    "MAX_DAYS",
    "csv_filename",
    "csv_response",
    "members_csv",
    "members_page",
    "overlap",
    "require_segment",
    "router",
    "segment_report",
]

MAX_DAYS = 366  # tsunagu.history.MAX_DAYS reconstructs as far back (api may not import it)
#: the columns every members CSV starts with; chosen traits and computed traits follow
CSV_COLUMNS = ("person_id", "user_id", "email", "first_seen", "last_seen", "entered_at")
#: the columns that hold times; their headers name the zone, e.g. `first_seen (Asia/Tokyo)`
CSV_TIME_COLUMNS = frozenset({"first_seen", "last_seen", "entered_at"})
# Rows per chunk of a CSV download: one entered_at query and one write to the socket each,
# so a segment of a million people streams in bounded memory.
CSV_CHUNK = 2000


def require_segment(pipe: WorkspacePipeline, name: str, field: str = "name") -> None:
    if name not in pipe.engine.live.segments:
        raise NotFound.for_field(field, f"no segment {name!r} in this workspace")


def _members(pipe: WorkspacePipeline, name: str, page: int = 10_000) -> Iterator[str]:
    """The live members' person ids in id order (a stable order to page through), read
    from the member index a page at a time (never a pass over every person)."""
    after = ""
    while True:
        ids = pipe.segment_members(name, after, page)
        yield from ids
        if len(ids) < page:
            return
        after = ids[-1]


def _midnight(d: date, zone: ZoneInfo) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=zone).timestamp() * 1000)


async def segment_report(pipe: WorkspacePipeline, name: str, days: int, now: int) -> dict[str, Any]:
    """Entries, exits and the size at the end of each of the last `days` days (today included).

    Days are calendar days in the workspace's time zone. From the day the segment was
    defined (as it is now), they come from the timeline: the size at the end of a day is
    the number of people (as they are now: merged ids count as their survivor) whose
    latest entry or exit before the next midnight was an entry. That is exact where a
    running count of entries minus exits is not: when two members merge, one of them
    stops being a person without an exit. On the definition day, entries and exits are
    the people in at its end and not the day before, and the other way round.

    The days before are reconstructed from the events (`tsunagu.history`) and marked
    `"source": "reconstructed"`; until that is done they are `"pending"`, with no numbers.
    """
    require_segment(pipe, name)
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput.for_field("days", f"must be 1 to {MAX_DAYS}, not {days}")
    zone = ZoneInfo(pipe.config.timezone)
    today = date(1970, 1, 1) + timedelta(days=day_of(now, zone))
    dates = [today - timedelta(days=days - 1 - i) for i in range(days)]
    starts = [_midnight(d, zone) for d in dates]
    ends = [*starts[1:], _midnight(today + timedelta(days=1), zone)]
    await pipe.flush()
    pipe.histories.check()  # history that arrived since the last look is reconstructed again
    history = pipe.histories.status(name)
    defined = date.fromisoformat(history["defined"]) if "defined" in history else dates[0]
    sql, params = segment_days_query(name, starts, ends)
    rows = await asyncio.to_thread(pipe.analytics.query, sql, params)
    out = [
        {"day": dates[i].isoformat(), "source": "live", "entries": entries, "exits": exits, "size": size}
        for i, entries, exits, size in rows
    ]
    if dates[0] <= defined:
        await asyncio.to_thread(_with_history, pipe, name, out, dates, ends, defined)
    return {
        "segment": name,
        "size": pipe.segment_size(name),
        "timezone": pipe.config.timezone,
        "history": history,
        "days": out,
    }


def _with_history(
    pipe: WorkspacePipeline, name: str, out: list[dict[str, Any]], dates: list[date], ends: list[int], defined: date
) -> None:
    """Put the reconstructed days before `defined` into `out`, and the definition day's flow."""
    with pipe.analytics.reader() as con:
        base = pipe.histories.base(con, name)
        stored: dict[date, tuple[int, int, int]] = {}
        if base is not None:
            version = pipe.engine.live.definitions[("segment", name)].version
            rows = con.execute(*history_days_query(name, version, dates[0], min(dates[-1], defined))).fetchall()
            stored = {d: (size, entries, exits) for d, size, entries, exits in rows}
        live_in: set[str] | None = None
        if base is not None and defined in dates:  # who was in at the end of the definition day
            end = ends[dates.index(defined)]
            members = con.execute(*members_at_query(name, end)).fetchall()
            live_in = {r[0] for r in members}
    for i, d in enumerate(dates):
        day = out[i]
        if d > defined:
            break
        if d == defined:
            if base is None:
                day.update(entries=None, exits=None)
                day["source"] = "pending"
            elif live_in is not None:
                aliases = pipe.engine.aliases
                before = {aliases.get(pid, pid) for pid in base}
                day.update(entries=len(live_in - before), exits=len(before - live_in))
            continue
        if base is None:
            day.update(source="pending", entries=None, exits=None, size=None)
            continue
        size, entries, exits = stored.get(d, (0, 0, 0))  # a day before the first event: nobody yet
        day.update(source="reconstructed", entries=entries, exits=exits, size=size)


def overlap(pipe: WorkspacePipeline, a: str, b: str) -> dict[str, Any]:
    """How many people are in `a`, in `b`, in both, now (live memberships)."""
    require_segment(pipe, a, "a")
    require_segment(pipe, b, "b")
    in_a = in_b = both = 0
    # both member lists come in id order: one merge of the two, nothing held
    xs, ys = _members(pipe, a), _members(pipe, b)
    x, y = next(xs, None), next(ys, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x < y):
            in_a += 1
            x = next(xs, None)
        elif x is None or y < x:
            in_b += 1
            y = next(ys, None)
        else:
            in_a, in_b, both = in_a + 1, in_b + 1, both + 1
            x, y = next(xs, None), next(ys, None)
    union = in_a + in_b - both
    return {
        "a": in_a,
        "b": in_b,
        "both": both,
        "only_a": in_a - both,
        "only_b": in_b - both,
        "jaccard": round(both / union, 6) if union else 0.0,
    }


async def _entered_at(pipe: WorkspacePipeline, name: str, person_ids: list[str]) -> dict[str, int]:
    """When each of these people last entered the segment (their current stay)."""
    if not person_ids:
        return {}
    rows = await asyncio.to_thread(pipe.analytics.query, *entered_at_query(name, person_ids))
    return dict(rows)  # type: ignore[arg-type]


async def members_page(
    pipe: WorkspacePipeline, name: str, *, limit: int, after: str | None
) -> tuple[list[tuple[Person, int | None]], str | None]:
    """Members in person id order after `after`, with when they entered; and the next cursor."""
    require_segment(pipe, name)
    ids = pipe.segment_members(name, after or "", limit + 1)
    page, more = ids[:limit], len(ids) > limit
    await pipe.flush()
    entered = await _entered_at(pipe, name, page)
    people = [(p, entered.get(pid)) for pid in page if (p := pipe.engine.persons.get(pid))]
    return people, (page[-1] if more and page else None)


def _parse_names(field: str, value: str | None) -> list[str]:
    names = [n.strip() for n in (value or "").split(",") if n.strip()]
    if len(names) > 100:
        raise InvalidInput.for_field(field, "at most 100 names")
    return names


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return msgspec.json.encode(value).decode()
    return str(value)


def members_csv(
    pipe: WorkspacePipeline, name: str, *, traits: str | None, computed: str | None, clock: Callable[[], int]
) -> AsyncIterator[bytes]:
    """The members as CSV (UTF-8 with a BOM, so Excel opens Japanese text right), in chunks.

    Checks the segment and the names first (errors must come before the first byte),
    then streams: the member ids are taken once, rows are written `CSV_CHUNK` at a time.
    Times are local to the workspace (`YYYY-MM-DD HH:MM:SS`, which spreadsheets read as
    dates), and the header of each time column names the zone: `first_seen (Asia/Tokyo)`.
    """
    require_segment(pipe, name)
    trait_names = _parse_names("traits", traits)
    computed_names = _parse_names("computed", computed)
    unknown = [c for c in computed_names if c not in pipe.engine.live.computed]
    if unknown:
        known = ", ".join(sorted(pipe.engine.live.computed)) or "none defined"
        raise InvalidInput.for_field("computed", f"no computed trait {unknown[0]!r} (known: {known})")
    zone = ZoneInfo(pipe.config.timezone)

    def local(ms: int | None) -> str:
        if not ms:
            return ""
        return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    async def rows() -> AsyncIterator[bytes]:
        ids = list(_members(pipe, name))  # taken once: the download is of the members now
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\r\n")  # RFC 4180 line ends, quotes where needed
        buf.write("\ufeff")
        header = [f"{c} ({pipe.config.timezone})" if c in CSV_TIME_COLUMNS else c for c in CSV_COLUMNS]
        out.writerow([*header, *trait_names, *computed_names])
        await pipe.flush()
        for i in range(0, len(ids), CSV_CHUNK):
            chunk = ids[i : i + CSV_CHUNK]
            entered = await _entered_at(pipe, name, chunk)
            now = clock()
            for pid in chunk:
                p = pipe.engine.persons.get(pid)
                if p is None:  # merged away or forgotten since the download started
                    continue
                values = pipe.engine.live.computed_values(p, now) if computed_names else {}
                out.writerow(
                    [
                        pid,
                        ";".join(p.identifiers.get("user_id", ())),
                        ";".join(p.identifiers.get("email", ())),
                        local(p.first_seen if p.event_count else None),
                        local(p.last_seen if p.event_count else None),
                        local(entered.get(pid)),
                        *(_cell(p.traits.get(t)) for t in trait_names),
                        *(_cell(values.get(c)) for c in computed_names),
                    ]
                )
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
        if buf.tell():  # an empty segment: the header alone
            yield buf.getvalue().encode()

    return rows()


def csv_filename(name: str) -> str:
    return "segment-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".csv"


# -- the HTTP API -------------------------------------------------------------------------


class ReportDayOut(BaseModel):
    day: str = Field(description="a calendar day in the workspace's time zone", examples=["2026-11-20"])
    source: Literal["live", "reconstructed", "pending"] = Field(
        description="live: from the timeline (the definition day on); reconstructed: from the events, for a day"
        " before the segment was defined; pending: before it was defined, not reconstructed yet (no numbers)"
    )
    entries: int | None = Field(description="people who entered that day")
    exits: int | None = Field(description="people who left that day")
    size: int | None = Field(description="members at the end of that day (now, for today)")


class HistoryOut(BaseModel):
    status: Literal["done", "running", "queued", "none"] = Field(
        description="the reconstruction of the days before the definition: done, running, queued (to run, or to"
        " run again because events dated before the definition arrived since)"
    )
    defined: str | None = Field(None, description="the day this version of the segment was defined")
    first_day: str | None = Field(None, description="the first day reconstructed (none: no events before)")
    days: int | None = Field(None, description="days reconstructed")
    days_done: int | None = Field(None, description="while running: days done")
    days_total: int | None = Field(None, description="while running: days to do")


class SegmentReportOut(BaseModel):
    segment: str
    size: int = Field(description="members now")
    timezone: str
    history: HistoryOut
    days: list[ReportDayOut] = Field(description="oldest first; the last is today")


class OverlapOut(BaseModel):
    a: int = Field(description="members of a")
    b: int = Field(description="members of b")
    both: int
    only_a: int
    only_b: int
    jaccard: float = Field(description="both / members of either (0 when both are empty)")


class MemberOut(BaseModel):
    person_id: str
    identifiers: dict[str, list[str]]
    traits: dict[str, Any]
    first_seen: str | None
    last_seen: str | None
    entered_at: str | None = Field(description="when this stay in the segment began, if on the timeline")


class MembersOut(BaseModel):
    segment: str
    size: int
    members: list[MemberOut]
    next_cursor: str | None


router = APIRouter(tags=["segment reports"])


@router.get("/api/v1/segments/overlap", response_model=OverlapOut, responses=error_responses(404))
async def segments_overlap(
    pipe: Pipe,
    a: Annotated[str, Query(description="a segment name")],
    b: Annotated[str, Query(description="another segment name")],
) -> dict[str, Any]:
    """How many people are in each of two segments and in both, now."""
    return overlap(pipe, a, b)


@router.get("/api/v1/segments/{name}/report", response_model=SegmentReportOut, responses=error_responses(404))
async def report(
    pipe: Pipe, name: str, request: Request, days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = 30
) -> dict[str, Any]:
    """Entries, exits and size at the end of each of the last `days` days (workspace time zone)."""
    return await segment_report(pipe, name, days, request.app.state.platform.clock())


@router.get("/api/v1/segments/{name}/members", response_model=MembersOut, responses=error_responses(404))
async def members(
    pipe: Pipe,
    name: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The members now, in person id order, paged with `next_cursor`."""
    after = _decode_cursor(cursor, str) if cursor else None
    page, nxt = await members_page(pipe, name, limit=limit, after=after)
    return {
        "segment": name,
        "size": pipe.segment_size(name),
        "members": [
            {
                "person_id": p.person_id,
                "identifiers": p.identifiers,
                "traits": p.traits,
                "first_seen": iso(p.first_seen) if p.event_count else None,
                "last_seen": iso(p.last_seen) if p.event_count else None,
                "entered_at": iso(entered),
            }
            for p, entered in page
        ],
        "next_cursor": _encode_cursor(nxt) if nxt else None,
    }


@router.get(
    "/api/v1/segments/{name}/members.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 with a BOM"}, **error_responses(404)},
)
async def members_download(
    pipe: Pipe,
    name: str,
    request: Request,
    traits: Annotated[str | None, Query(description="trait columns, comma separated")] = None,
    computed: Annotated[str | None, Query(description="computed trait columns, comma separated")] = None,
) -> StreamingResponse:
    """The members as CSV, streamed: person_id, user_id, email, first_seen, last_seen, entered_at, ..."""
    body = members_csv(pipe, name, traits=traits, computed=computed, clock=request.app.state.platform.clock)
    return csv_response(body, name)


def csv_response(body: AsyncIterator[bytes], name: str) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{csv_filename(name)}"', "Cache-Control": "no-store"},
    )
