"""A rule's members now, counted by SQL over the analytics store: the API's and the UI's preview."""

from __future__ import annotations

import asyncio
import inspect
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..core.errors import FieldError, InvalidInput
from ..core.rulecheck import check_rule
from ..core.segments import Rule, day_of, parse_rule
from ..core.vocabulary import Vocabulary
from ..pipeline import WorkspacePipeline
from ..sql.reports import preview_query
from ..sql.segments import DIALECTS, compile_segment, segment_query

__all__ = ["preview_rule"]

# Rules may read the workspace's computed traits and other segments once the SQL compiler
# takes their definitions (keyword arguments `computed` and `segments`).
_TAKES_DEFINITIONS = "segments" in inspect.signature(compile_segment).parameters


def _definitions(pipe: WorkspacePipeline) -> dict[str, Any]:
    if not _TAKES_DEFINITIONS:
        return {}
    live = pipe.engine.live
    return {"computed": dict(live.computed), "segments": {n: s.rule for n, s in live.segments.items()}}


def _check_definitions(pipe: WorkspacePipeline, data: Any) -> None:
    """Refuse a rule reading a computed trait or segment the workspace does not define, naming
    where and the nearest defined (`rule.all[0].computed: no computed trait 'ltv2' …; did you mean 'ltv'?`)."""
    live = pipe.engine.live
    names = Vocabulary(computed=set(live.computed), segments=set(live.segments))
    missing = [w for w in check_rule(data, names) if w.kind in ("unknown_computed", "unknown_segment")]
    if missing:
        raise InvalidInput.for_fields([FieldError(w.path, w.message) for w in missing])


async def preview_rule(
    pipe: WorkspacePipeline, data: Any, *, now: int, sample: int = 20, dialect: str = "duckdb"
) -> tuple[int, list[str], str, str]:
    """(member count, a sample of person ids, the SQL in `dialect`, the day windows end on)."""
    rule: Rule = parse_rule(data)
    _check_definitions(pipe, data)
    if dialect not in DIALECTS:
        raise InvalidInput.for_field("dialect", f"{dialect!r} is not one of {', '.join(DIALECTS)}")
    tz = pipe.config.timezone
    today = day_of(now, ZoneInfo(tz))
    known = _definitions(pipe)
    try:
        # the store's hot columns for the count it runs; the SQL shown reads the JSON, as a
        # warehouse holding the same events would
        members = segment_query(rule, today=today, timezone=tz, hot=pipe.analytics.hot_properties, **known)
    except ValueError as exc:  # a computed trait or segment the workspace does not define
        raise InvalidInput.for_field("rule", str(exc)) from None
    await pipe.flush()
    rows = await asyncio.to_thread(pipe.analytics.query, *preview_query(members, sample))
    count, ids = rows[0]
    sql = compile_segment(rule, today=today, timezone=tz, dialect=dialect, pretty=True, **known)
    return count, list(ids or []), sql, (date(1970, 1, 1) + timedelta(days=today)).isoformat()
