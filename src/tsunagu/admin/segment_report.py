"""The segment report page: size over time, entries and exits per day, overlap, members.

Renders the same functions as the API (`tsunagu.api.reports`), so the page and
`GET /api/v1/segments/{name}/report` always show the same numbers. The CSV download goes
through the session cookie, not the API token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..api.reports import csv_response, members_csv, members_page, overlap, require_segment, segment_report
from ..core.errors import NotFound

if TYPE_CHECKING:
    from ..app import Platform
    from ..pipeline import WorkspacePipeline
    from ..storage.control import Session

__all__ = ["segment_report_routes"]

DAY_CHOICES = (7, 30, 90)
PAGE = 25
# the charts' drawing box (SVG user units); the SVG stretches to the card's width
W, H = 600, 120


def nice_top(value: int) -> int:
    """The y axis' top: the smallest 1, 2, 2.5 or 5 times a power of ten at or above `value`."""
    if value <= 1:
        return 1
    power = 1
    while True:
        for step in (1, 2, 2.5, 5):
            if step * power >= value and float(step * power).is_integer():
                return int(step * power)
        power *= 10


def _x_labels(days: list[dict[str, Any]]) -> list[str]:
    """Day labels under a chart: the first, the middle and the last day (MM-DD; the year once)."""
    if not days:
        return []
    picks = sorted({0, len(days) // 2, len(days) - 1})
    return [days[i]["day"] if i == 0 else days[i]["day"][5:] for i in picks]


def _marks(days: list[dict[str, Any]], slot: float) -> dict[str, Any]:
    """The band of reconstructed (and pending) days, and where the definition day starts."""
    before = [i for i, d in enumerate(days) if d["source"] != "live"]
    if not before:
        return {"band": None, "defined_x": None}
    last = before[-1]
    return {"band": {"x": 0, "w": round((last + 1) * slot, 2)}, "defined_x": round((last + 1) * slot, 2)}


def _size_chart(days: list[dict[str, Any]]) -> dict[str, Any]:
    """A line of the size at the end of each day (slots centred), on a 0-based axis."""
    top = nice_top(max([d["size"] or 0 for d in days] + [1]))
    slot = W / len(days)
    points = [(round((i + 0.5) * slot, 2), round(H - (d["size"] or 0) / top * H, 2))
              for i, d in enumerate(days) if d["size"] is not None]  # fmt: skip
    line = " ".join(f"{x},{y}" for x, y in points)
    area = (f"M{points[0][0]},{H} L" + " L".join(f"{x},{y}" for x, y in points) + f" L{points[-1][0]},{H} Z"
            if points else "")  # fmt: skip
    hits = [{"x": round(i * slot, 2), "w": round(slot, 2), "day": d} for i, d in enumerate(days)]
    mid = f"{top / 2:,.1f}".removesuffix(".0") if top > 1 else ""
    return {"line": line, "area": area, "top": top, "mid": mid, "hits": hits, "labels": _x_labels(days),
            **_marks(days, slot)}  # fmt: skip


def _flow_chart(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Entries up, exits down, on one scale; with no exits in the range, entries only (no "−N")."""
    entries = max([d["entries"] or 0 for d in days] + [0])
    exits = max([d["exits"] or 0 for d in days] + [0])
    top = nice_top(max(entries, exits, 1))
    slot = W / len(days)
    zero = H / 2 if exits else H  # where 0 is
    bars = []
    for i, d in enumerate(days):
        up = (d["entries"] or 0) / top * (zero - 2)
        down = (d["exits"] or 0) / top * (H - zero - 2) if exits else 0
        bars.append({"x": round(i * slot + slot * 0.15, 2), "w": round(slot * 0.7, 2), "up": round(up, 2),
                     "down": round(down, 2), "day": d})  # fmt: skip
    return {"bars": bars, "zero": zero, "top": top, "has_exits": bool(exits), "labels": _x_labels(days),
            **_marks(days, slot)}  # fmt: skip


def segment_report_routes(
    platform: Platform,
    render: Callable[..., Response],
    pipeline_for: Callable[[Request], Awaitable[tuple[Session, WorkspacePipeline]]],
    guarded: Callable[[Any], Any],
) -> list[Route]:
    """The page's routes, for `build_ui` (which owns sessions and rendering)."""

    async def report_page(request: Request) -> Response:
        s, pipe = await pipeline_for(request)
        name = request.path_params["name"]
        try:
            require_segment(pipe, name)
        except NotFound:
            return render(request, "not_found.html", status=404, s=s)
        q = request.query_params
        days = int(q["days"]) if q.get("days", "").isdigit() and int(q["days"]) in DAY_CHOICES else 30
        report = await segment_report(pipe, name, days, platform.clock())
        others = [n for n in pipe.engine.live.segments if n != name]
        other = q.get("with") or None
        both = overlap(pipe, name, other) if other in others else None
        after = q.get("after") or None
        members, nxt = await members_page(pipe, name, limit=PAGE, after=after)
        zone = ZoneInfo(pipe.config.timezone)

        def fmt(ms: int | None) -> str:
            if not ms:
                return "-"
            return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M")

        d = report["days"]
        return render(
            request, "segment_report.html", s=s, segment=name, report=report, days=days, day_choices=DAY_CHOICES,
            size_chart=_size_chart(d), flow_chart=_flow_chart(d), W=W, H=H,
            entries=sum(x["entries"] or 0 for x in d), exits=sum(x["exits"] or 0 for x in d),
            reconstructed=sum(x["source"] == "reconstructed" for x in d),
            pending=sum(x["source"] == "pending" for x in d),
            others=others, other=other if both else None, both=both, members=members, next_after=nxt,
            after=after, fmt=fmt,
        )  # fmt: skip

    async def members_download(request: Request) -> Response:
        _, pipe = await pipeline_for(request)
        name = request.path_params["name"]
        q = request.query_params
        body = members_csv(pipe, name, traits=q.get("traits"), computed=q.get("computed"), clock=platform.clock)
        return csv_response(body, name)

    return [
        Route("/segments/{name}/report", guarded(report_page)),
        Route("/segments/{name}/members.csv", guarded(members_download)),
    ]
