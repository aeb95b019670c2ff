"""User data: every field of every event summarised per person, in time windows.

Nothing is declared. Each event adds its values to a few small summaries:

* one per **field** (`buy.price`, `view.category`, `$page.path`: the event name, then
  the property path; nested objects are followed up to three levels, lists are skipped),
  and one per **event name** (`buy`, `$page`), which only counts;
* each summary keeps **day buckets** (calendar days in the workspace's zone) of the last
  `KEEP_DAYS` days, an **archive** of older days, and the **current and previous
  session** (a session ends after 30 minutes without an event).

So an event costs a constant amount of work (two bucket updates per field), and a window
is summed from the buckets when read: `last_7_days` adds up to seven buckets.

A bucket (`Stats`) holds the count of events that carried the field, and by the type of
the value: numbers: sum, min, max (avg = sum / numeric count); strings: the count of
each value (most frequent, distinct count); booleans: true and false counts; any value:
the first and last (by event time, then message id). Dates are strings: first and last.

Sums stay storable: an integer sum that leaves the signed 64-bit range becomes a float
(`fit_sum`), as SQL's DOUBLE sum would be, so no checkpoint or log record ever holds an
integer msgpack and the warehouses cannot.

Memory is bounded: `KEEP_DAYS` buckets a summary, `MAX_FIELDS` summaries a person
(further fields are not summarised; `Person.data_dropped` counts them) and
`MAX_DISTINCT` distinct strings a bucket (further new values still count in `count`,
but not in `most_frequent` or `distinct_count`, which then reports the cap).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

__all__ = [
    "COUNT_STATS",
    "KEEP_DAYS",
    "MAX_DISTINCT",
    "MAX_FIELDS",
    "SESSION_GAP_MS",
    "STATS",
    "WINDOWS",
    "Folded",
    "add",
    "add_session_stats",
    "add_stats",
    "fields_of",
    "fit_sum",
    "fold",
    "merge_stats",
    "merge_summary",
    "new_summary",
    "read",
    "window_days",
]

WINDOWS = (
    "all_time", "this_session", "previous_session", "today", "yesterday", "this_week", "last_week",
    "this_month", "last_month", "last_7_days", "last_28_days",
)  # fmt: skip
STATS = (
    "count", "sum", "min", "max", "avg", "first", "last", "most_frequent", "distinct_count",
    "true_count", "false_count",
)  # fmt: skip
#: statistics that are 0, not missing, when nothing was seen
COUNT_STATS = frozenset({"count", "sum", "distinct_count", "true_count", "false_count"})
KEEP_DAYS = 63  # this month and last month need at most 62 days, today included
MAX_FIELDS = 300
MAX_DISTINCT = 100
MAX_DEPTH = 3
SESSION_GAP_MS = 30 * 60 * 1000

# Stats: one list per bucket (lists: cheap to update in place, and msgpack-friendly).
N, NUMS, SUM, MIN, MAX, FIRST_TS, FIRST_MID, FIRST_V, LAST_TS, LAST_MID, LAST_V, VALUES, TRUES, FALSES = range(14)
# Summary: [day buckets, archive, session no, session stats, previous session no, its stats]
DAYS, ARCHIVE, SESS_NO, SESS, PREV_NO, PREV = range(6)

Stats = list[Any]
Summary = list[Any]


_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 63) - 1


def fit_sum(total: Any) -> Any:
    """An integer sum past the signed 64-bit range as a float (exact below it)."""
    if total.__class__ is int and not _INT_MIN <= total <= _INT_MAX:
        return float(total)
    return total


def new_summary() -> Summary:
    return [{}, None, -1, None, -1, None]


def _new_stats(ts: int, mid: str, value: Any) -> Stats:
    t = type(value)
    if t is int or t is float:
        return [1, 1, value, value, value, ts, mid, value, ts, mid, value, None, 0, 0]
    if t is str:
        return [1, 0, 0, None, None, ts, mid, value, ts, mid, value, {value: 1}, 0, 0]
    if t is bool:
        return [1, 0, 0, None, None, ts, mid, value, ts, mid, value, None, 1 if value else 0, 0 if value else 1]
    return [1, 0, 0, None, None, ts, mid, value, ts, mid, value, None, 0, 0]


def _add_stats(s: Stats, ts: int, mid: str, value: Any) -> None:
    s[0] += 1  # N
    t = type(value)
    if t is int or t is float:
        s[1] += 1
        total = s[2] + value
        s[2] = total if total.__class__ is not int or _INT_MIN <= total <= _INT_MAX else float(total)
        if s[3] is None or value < s[3]:
            s[3] = value
        if s[4] is None or value > s[4]:
            s[4] = value
    elif t is str:
        values = s[11]
        if values is None:
            s[11] = {value: 1}
        elif value in values:
            values[value] += 1
        elif len(values) < MAX_DISTINCT:
            values[value] = 1
    elif t is bool:
        if value:
            s[12] += 1
        else:
            s[13] += 1
    if ts >= s[8]:  # the usual case: events arrive in time order
        if ts > s[8] or mid > s[9]:
            s[8], s[9], s[10] = ts, mid, value
    elif ts < s[5] or (ts == s[5] and mid < s[6]):
        s[5], s[6], s[7] = ts, mid, value


def add(summary: Summary, day: int, session: int, ts: int, mid: str, value: Any, keep: int = KEEP_DAYS) -> None:
    """Add one value (None for the event-name summary) seen on `day`, in `session`."""
    days = summary[0]
    s = days.get(day)
    if s is None:
        days[day] = _new_stats(ts, mid, value)
        if len(days) > keep:  # at most once per new day
            _archive(summary, keep)
    else:
        _add_stats(s, ts, mid, value)
    sess_no = summary[2]
    if session == sess_no:
        _add_stats(summary[3], ts, mid, value)
    elif session > sess_no:
        if sess_no == session - 1:
            summary[4], summary[5] = sess_no, summary[3]
        summary[2], summary[3] = session, _new_stats(ts, mid, value)
    elif session == summary[4]:
        _add_stats(summary[5], ts, mid, value)


def _archive(summary: Summary, keep: int) -> None:
    days = summary[DAYS]
    newest = max(days)
    for d in [d for d in days if d <= newest - keep]:
        summary[ARCHIVE] = merge_stats(summary[ARCHIVE], days.pop(d))


def add_stats(summary: Summary, day: int, stats: Stats, keep: int = KEEP_DAYS) -> None:
    """Add a whole bucket (a back-fill's row) to a day."""
    days = summary[DAYS]
    days[day] = merge_stats(days.get(day), stats)
    if len(days) > keep:
        _archive(summary, keep)


def add_session_stats(summary: Summary, session: int, stats: Stats) -> None:
    """Add a whole bucket to a session (a back-fill's row): the two latest are kept."""
    if session == summary[SESS_NO]:
        summary[SESS] = merge_stats(summary[SESS], stats)
    elif session == summary[PREV_NO]:
        summary[PREV] = merge_stats(summary[PREV], stats)
    elif session > summary[SESS_NO]:
        if summary[SESS_NO] == session - 1:
            summary[PREV_NO], summary[PREV] = summary[SESS_NO], summary[SESS]
        summary[SESS_NO], summary[SESS] = session, _copy(stats)
    elif session > summary[PREV_NO]:
        summary[PREV_NO], summary[PREV] = session, _copy(stats)


def merge_stats(a: Stats | None, b: Stats | None) -> Stats | None:
    if a is None:
        return None if b is None else _copy(b)
    if b is None:
        return a
    a[N] += b[N]
    a[NUMS] += b[NUMS]
    a[SUM] = fit_sum(a[SUM] + b[SUM])
    if b[MIN] is not None and (a[MIN] is None or b[MIN] < a[MIN]):
        a[MIN] = b[MIN]
    if b[MAX] is not None and (a[MAX] is None or b[MAX] > a[MAX]):
        a[MAX] = b[MAX]
    if (b[FIRST_TS], b[FIRST_MID]) < (a[FIRST_TS], a[FIRST_MID]):
        a[FIRST_TS], a[FIRST_MID], a[FIRST_V] = b[FIRST_TS], b[FIRST_MID], b[FIRST_V]
    if (b[LAST_TS], b[LAST_MID]) > (a[LAST_TS], a[LAST_MID]):
        a[LAST_TS], a[LAST_MID], a[LAST_V] = b[LAST_TS], b[LAST_MID], b[LAST_V]
    if b[VALUES]:
        values = a[VALUES] if a[VALUES] is not None else {}
        for v, n in b[VALUES].items():
            if v in values:
                values[v] += n
            elif len(values) < MAX_DISTINCT:
                values[v] = n
        a[VALUES] = values
    a[TRUES] += b[TRUES]
    a[FALSES] += b[FALSES]
    return a


def _copy(s: Stats) -> Stats:
    c = list(s)
    c[SUM] = fit_sum(c[SUM])
    if c[VALUES] is not None:
        c[VALUES] = dict(c[VALUES])
    return c


def merge_summary(a: Summary, b: Summary) -> None:
    """Fold `b` into `a` (a merge of two persons). Sessions: the later one's are kept."""
    days = a[DAYS]
    for day, s in b[DAYS].items():
        days[day] = merge_stats(days.get(day), s)
    a[ARCHIVE] = merge_stats(a[ARCHIVE], b[ARCHIVE])
    if b[SESS] is not None and (a[SESS] is None or b[SESS][LAST_TS] > a[SESS][LAST_TS]):
        a[SESS_NO], a[SESS], a[PREV_NO], a[PREV] = b[SESS_NO], _copy(b[SESS]), b[PREV_NO], b[PREV]


# -- reading -------------------------------------------------------------------------


def _civil(day: int) -> date:
    return date(1970, 1, 1) + timedelta(days=day)


def _day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def window_days(window: str, today: int) -> tuple[int | None, int]:
    """The first and last day of a calendar window (first None: all time)."""
    if window == "all_time":
        return None, today
    if window == "today":
        return today, today
    if window == "yesterday":
        return today - 1, today - 1
    if window == "last_7_days":
        return today - 6, today
    if window == "last_28_days":
        return today - 27, today
    monday = today - (today + 3) % 7  # 1970-01-01 was a Thursday; weeks start on Monday
    if window == "this_week":
        return monday, today
    if window == "last_week":
        return monday - 7, monday - 1
    first = _civil(today).replace(day=1)
    if window == "this_month":
        return _day(first), today
    if window == "last_month":
        prev_last = first - timedelta(days=1)
        return _day(prev_last.replace(day=1)), _day(prev_last)
    raise ValueError(f"unknown window {window!r}")


def window_stats(summary: Summary | None, window: str, today: int, session: int) -> Stats | None:
    """The summary's buckets for a window, added up (None: nothing seen in it)."""
    if summary is None:
        return None
    if window == "this_session":
        return summary[SESS] if summary[SESS_NO] == session else None
    if window == "previous_session":
        if summary[SESS_NO] == session - 1:
            return summary[SESS]
        return summary[PREV] if summary[PREV_NO] == session - 1 else None
    first, last = window_days(window, today)
    out: Stats | None = None
    if first is None:
        out = merge_stats(None, summary[ARCHIVE])
    for day, s in summary[DAYS].items():
        if day <= last and (first is None or day >= first):
            out = merge_stats(out, s) if out is not None else _copy(s)
    return out


def stat_of(s: Stats | None, stat: str) -> Any:
    """One statistic of a bucket; counts are 0 when nothing was seen, the rest None."""
    if s is None:
        return 0 if stat in COUNT_STATS else None
    if stat == "count":
        return s[N]
    if stat == "sum":
        return s[SUM]
    if stat == "avg":
        return s[SUM] / s[NUMS] if s[NUMS] else None
    if stat == "min":
        return s[MIN]
    if stat == "max":
        return s[MAX]
    if stat == "first":
        return s[FIRST_V]
    if stat == "last":
        return s[LAST_V]
    if stat == "most_frequent":
        values = s[VALUES]
        if not values:
            return None
        return min(values.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    if stat == "distinct_count":
        return len(s[VALUES]) if s[VALUES] else 0
    if stat == "true_count":
        return s[TRUES]
    if stat == "false_count":
        return s[FALSES]
    raise ValueError(f"unknown statistic {stat!r}")


def read(summary: Summary | None, stat: str, window: str, today: int, session: int) -> Any:
    if summary is None:
        return 0 if stat in COUNT_STATS else None
    if window == "this_session" or window == "previous_session":
        return stat_of(window_stats(summary, window, today, session), stat)
    first, last = window_days(window, today)
    return read_days(summary, first, last, stat)


_FOLDED = {"count", "sum", "avg", "min", "max", "true_count", "false_count", "first_ts", "last_ts"}


def read_days(summary: Summary | None, first: int | None, last: int, stat: str) -> Any:
    """A statistic over the day buckets `first`..`last` (first None: all time).

    The usual statistics are folded straight from the buckets, without building the
    merged bucket; `first_ts` / `last_ts` give the first and last event's time.
    """
    if summary is None:
        return 0 if stat in COUNT_STATS else None
    if stat not in _FOLDED:
        out: Stats | None = merge_stats(None, summary[ARCHIVE]) if first is None else None
        for day, s in summary[DAYS].items():
            if day <= last and (first is None or day >= first):
                out = merge_stats(out, s)
        return stat_of(out, stat)
    parts = [s for day, s in summary[DAYS].items() if day <= last and (first is None or day >= first)]
    if first is None and summary[ARCHIVE] is not None:
        parts.append(summary[ARCHIVE])
    if not parts:
        return 0 if stat in COUNT_STATS else None
    if stat == "count":
        return sum(s[N] for s in parts)
    if stat == "sum":
        return sum(s[SUM] for s in parts)
    if stat == "avg":
        nums = sum(s[NUMS] for s in parts)
        return sum(s[SUM] for s in parts) / nums if nums else None
    if stat == "min":
        return min((s[MIN] for s in parts if s[MIN] is not None), default=None)
    if stat == "max":
        return max((s[MAX] for s in parts if s[MAX] is not None), default=None)
    if stat == "true_count":
        return sum(s[TRUES] for s in parts)
    if stat == "false_count":
        return sum(s[FALSES] for s in parts)
    if stat == "first_ts":
        return min(s[FIRST_TS] for s in parts)
    return max(s[LAST_TS] for s in parts)


def describe(summary: Summary, today: int, session: int) -> dict[str, Any]:
    """Every statistic that has a value, for all time (the karte's user data panel)."""
    s = window_stats(summary, "all_time", today, session)
    if s is None:
        return {}
    out: dict[str, Any] = {"count": s[N]}
    if s[NUMS]:
        out |= {"sum": s[SUM], "min": s[MIN], "max": s[MAX], "avg": s[SUM] / s[NUMS]}
    if s[VALUES]:
        out |= {"most_frequent": stat_of(s, "most_frequent"), "distinct_count": len(s[VALUES])}
    if s[TRUES] or s[FALSES]:
        out |= {"true_count": s[TRUES], "false_count": s[FALSES]}
    if s[FIRST_V] is not None or s[LAST_V] is not None:
        out |= {"first": s[FIRST_V], "last": s[LAST_V]}
    for window in ("last_7_days", "last_28_days"):
        w = window_stats(summary, window, today, session)
        out[f"count_{window}"] = w[N] if w else 0
    return out


# -- what an event carries -------------------------------------------------------------


def fields_of(prefix: str, props: dict[str, Any], out: list[tuple[str, Any]], depth: int = 1) -> None:
    """(field, value) for every scalar property, nested objects as dotted paths."""
    for key, value in props.items():
        if value is None or type(value) is list:
            continue
        if type(value) is dict:
            if depth < MAX_DEPTH:
                fields_of(f"{prefix}.{key}", value, out, depth + 1)
            continue
        out.append((f"{prefix}.{key}", value))


# -- on read ---------------------------------------------------------------------------


@dataclass(slots=True)
class Folded:
    """A person's user data folded from their events: every field, as `fold` counts it."""

    data: dict[str, Summary] = field(default_factory=dict)
    #: fields not summarised because `MAX_FIELDS` were already there
    dropped: int = 0
    #: the current session's number (-1: none yet)
    session_no: int = -1


#: (type, event name, timestamp ms, message id, properties) of one event, in log order
TimelineEvent = tuple[str, str | None, int, str, dict[str, Any]]


def fold(events: Iterable[TimelineEvent], day_of: Callable[[int], int]) -> Folded:
    """Every user data field of a timeline, as the engine would keep it live if every
    field were read (`core.live.Live.observe`: sessions by arrival, then the event name's
    summary, then each field). The engine keeps live only the fields definitions read;
    the karte and `/people/{id}/data` fold the rest from the analytics store with this.
    """
    out = Folded()
    data = out.data
    session_last = 0

    def put(key: str, day: int, session: int, ts: int, mid: str, value: Any) -> None:
        summary = data.get(key)
        if summary is None:
            if len(data) >= MAX_FIELDS:
                out.dropped += 1
                return
            summary = data[key] = new_summary()
        add(summary, day, session, ts, mid, value)

    for typ, name, ts, mid, props in events:
        if typ == "track":
            key = name or ""
        elif typ == "page" or typ == "screen":
            key = "$" + typ
        else:
            continue
        day = day_of(ts)
        if out.session_no < 0 or ts > session_last + SESSION_GAP_MS:
            out.session_no += 1
            put("$sessions", day, out.session_no, ts, mid, None)
        if ts > session_last:
            session_last = ts
        put(key, day, out.session_no, ts, mid, None)
        if props:
            found: list[tuple[str, Any]] = []
            fields_of(key, props, found)
            for k, value in found:
                put(k, day, out.session_no, ts, mid, value)
    return out
