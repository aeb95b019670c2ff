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


def _size_chart(days: list[dict[str, Any]]) -> dict[str, Any]:
    top = max([d["size"] for d in days] + [1])
    step = W / max(len(days) - 1, 1)
    points = [(round(i * step, 2), round(H - d["size"] / top * (H - 8), 2)) for i, d in enumerate(days)]
    line = " ".join(f"{x},{y}" for x, y in points)
    area = f"M0,{H} L" + " L".join(f"{x},{y}" for x, y in points) + f" L{points[-1][0]},{H} Z"
    return {"line": line, "area": area, "points": points, "top": top}


def _flow_chart(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Entries above the middle line, exits below, on one scale."""
    top = max([d["entries"] for d in days] + [d["exits"] for d in days] + [1])
    slot = W / len(days)
    half = H / 2
    bars = []
    for i, d in enumerate(days):
        up = d["entries"] / top * (half - 4)
        down = d["exits"] / top * (half - 4)
        bars.append({"x": round(i * slot + slot * 0.15, 2), "w": round(slot * 0.7, 2), "up": round(up, 2),
                     "down": round(down, 2), "day": d})  # fmt: skip
    return {"bars": bars, "half": half, "top": top}


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
            entries=sum(x["entries"] for x in d), exits=sum(x["exits"] for x in d),
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
