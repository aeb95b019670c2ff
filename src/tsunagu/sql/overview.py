"""The overview a retailer opens every morning: sales per day by channel, how the channels
feed each other, the channel-mix classes and the products seen online and bought in store.

One pure function, `overview`, over the analytics store (the admin API's
`GET /api/v1/overview` and the UI's overview page both call it, so they never disagree).
It takes the day to end on (`today`, a calendar day in `timezone`), never the clock.

Definitions (docs/reports.md repeats them for readers):

- a purchase is a `track` event named `buy`; its amount is the number in
  `properties.revenue` (what the `ltv` computed trait sums; missing or not a number: 0);
- days are calendar days of the event's `timestamp` (when it happened) in `timezone`;
  the range is the `days` days ending with `today`, today included;
- a person is the person as they are now: events of ids merged away count for the
  person they were merged into (`person_events.canonical_person_id`);
- online is channel `web` or `app`; in store is channel `store`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..core.computed import Cases, ComputedTrait
from ..core.errors import InvalidInput
from ._rows import to_sql
from .segments import computed_query

__all__ = [
    "CHANNELS",
    "MAX_DAYS",
    "ONLINE",
    "ChannelTotals",
    "Overview",
    "overview",
    "today_in",
]

#: the channels the overview splits sales by, in the order charts and tables show them
CHANNELS = ("web", "app", "store")
ONLINE = ("web", "app")
MAX_DAYS = 366
TOP = 10
#: the event types that count as a visit to the web or the app (not identity bookkeeping
#: or segment markers)
VISIT_TYPES = ("track", "page", "screen")

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


@dataclass
class ChannelTotals:
    revenue: float = 0.0  # the sum of `properties.revenue` of the purchases
    orders: int = 0  # purchases (buy events)
    buyers: int = 0  # distinct people with a purchase


@dataclass
class Overview:
    timezone: str
    first_day: date
    last_day: date
    days: int
    #: one entry a day, oldest first: {"day": date, "web": ChannelTotals, "app": ..., "store": ...}
    daily: list[dict[str, Any]] = field(default_factory=list)
    #: per channel over the whole range (buyers: distinct over the range, not a sum of days)
    totals: dict[str, ChannelTotals] = field(default_factory=dict)
    #: every purchase over the range, whatever its channel (server, line, ... too)
    all_channels: ChannelTotals = field(default_factory=ChannelTotals)
    store_buyers: int = 0
    store_buyers_online_same_month: int = 0
    online_buyers: int = 0
    online_buyers_also_in_store: int = 0
    #: [{"class": value, "people": n, "avg_ltv": yen}], most people first (now, not the range)
    classes: list[dict[str, Any]] = field(default_factory=list)
    #: [{"product": key, "name": name, "views": n, "people": n}]
    viewed_online: list[dict[str, Any]] = field(default_factory=list)
    #: [{"product": key, "name": name, "units": n, "receipts": n, "revenue": yen}]
    bought_in_store: list[dict[str, Any]] = field(default_factory=list)

    @property
    def store_online_share(self) -> float | None:
        return self.store_buyers_online_same_month / self.store_buyers if self.store_buyers else None

    @property
    def online_store_share(self) -> float | None:
        return self.online_buyers_also_in_store / self.online_buyers if self.online_buyers else None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: days as ISO dates, money as numbers, shares as fractions (or null)."""
        out = asdict(self)
        out["first_day"] = self.first_day.isoformat()
        out["last_day"] = self.last_day.isoformat()
        for d in out["daily"]:
            d["day"] = d["day"].isoformat()
        out["shares"] = {
            "store_buyers": self.store_buyers,
            "store_buyers_online_same_month": self.store_buyers_online_same_month,
            "store_online_share": _round(self.store_online_share),
            "online_buyers": self.online_buyers,
            "online_buyers_also_in_store": self.online_buyers_also_in_store,
            "online_store_share": _round(self.online_store_share),
        }
        for k in ("store_buyers", "store_buyers_online_same_month", "online_buyers", "online_buyers_also_in_store"):
            del out[k]  # in `shares`
        return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def today_in(now_ms: int, timezone: str) -> date:
    """The calendar day an instant (epoch milliseconds) falls on in `timezone`."""
    return datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(ZoneInfo(timezone)).date()


def _loose_bounds(first: date, last: date, timezone: str) -> tuple[datetime, datetime]:
    """Instants surely before the first day starts and after the last ends (a day either
    side: the exact test is on the local date; these only let DuckDB skip row groups)."""
    zone = ZoneInfo(timezone)
    start = datetime(first.year, first.month, first.day, tzinfo=zone) - timedelta(days=1)
    end = datetime(last.year, last.month, last.day, tzinfo=zone) + timedelta(days=2)
    return start.astimezone(UTC), end.astimezone(UTC)


def _money(x: Any) -> float:
    return round(float(x or 0), 2)


def overview(
    query: Query,
    *,
    today: date,
    days: int,
    timezone: str,
    computed: Mapping[str, ComputedTrait] | None = None,
) -> Overview:
    """The overview of the `days` days ending with `today` (in `timezone`).

    `query(sql, params)` runs SQL on the analytics store (`DuckDBAnalytics.query`).
    `computed` is the workspace's computed traits: the channel-mix classes need
    `cross_channel_class` (a cases trait) and `ltv`; without them `classes` is empty.
    """
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise InvalidInput.for_field("days", f"must be 1 to {MAX_DAYS}, not {days!r}")
    ZoneInfo(timezone)  # an unknown zone fails here, before any SQL
    first = today - timedelta(days=days - 1)
    lo, hi = _loose_bounds(first, today, timezone)
    out = Overview(timezone=timezone, first_day=first, last_day=today, days=days)
    # the range's events: local day and canonical person, the raw timestamp bounded loosely
    scope = (
        "SELECT canonical_person_id AS pid, type, event, channel, message_id, properties,"
        " CAST(timezone(?, timestamp) AS DATE) AS day FROM person_events"
        " WHERE timestamp >= ? AND timestamp < ?"
    )
    ranged = f"r AS (SELECT * FROM ({scope}) WHERE day BETWEEN ? AND ?)"
    rparams: list[Any] = [timezone, lo, hi, first, today]
    buys = (
        "b AS (SELECT pid, channel, day, message_id,"
        " coalesce(TRY_CAST(json_extract_string(properties, '$.revenue') AS DOUBLE), 0) AS revenue"
        " FROM r WHERE type = 'track' AND event = 'buy')"
    )

    # 1. revenue, orders and buyers per day and channel; totals over the range
    rows = query(
        f"WITH {ranged}, {buys} SELECT day, channel, sum(revenue), count(*), count(DISTINCT pid) FROM b GROUP BY ALL",
        rparams,
    )
    per_day: dict[tuple[date, str], ChannelTotals] = {
        (d, ch): ChannelTotals(_money(rev), n, buyers) for d, ch, rev, n, buyers in rows
    }
    for i in range(days):
        d = first + timedelta(days=i)
        out.daily.append({"day": d, **{ch: per_day.get((d, ch), ChannelTotals()) for ch in CHANNELS}})
    rows = query(
        f"WITH {ranged}, {buys} SELECT grouping(channel), channel, sum(revenue), count(*), count(DISTINCT pid)"
        " FROM b GROUP BY GROUPING SETS ((channel), ())",
        rparams,
    )
    out.totals = {ch: ChannelTotals() for ch in CHANNELS}
    for whole, ch, rev, n, buyers in rows:
        if whole:
            out.all_channels = ChannelTotals(_money(rev), n, buyers)
        elif ch in out.totals:
            out.totals[ch] = ChannelTotals(_money(rev), n, buyers)

    # 2. cross-channel shares
    ((store_buyers, store_online, online_buyers, online_store),) = query(
        f"WITH {ranged}, {buys},"
        " sb AS (SELECT DISTINCT pid, date_trunc('month', day) AS month FROM b WHERE channel = 'store'),"
        " visits AS (SELECT DISTINCT canonical_person_id AS pid,"
        "   date_trunc('month', CAST(timezone(?, timestamp) AS DATE)) AS month FROM person_events"
        "   WHERE channel IN ? AND type IN ? AND canonical_person_id IN (SELECT pid FROM sb)"
        "   AND timestamp >= ? AND timestamp < ?),"
        " ob AS (SELECT DISTINCT pid FROM b WHERE channel IN ?)"
        " SELECT (SELECT count(DISTINCT pid) FROM sb),"
        "  (SELECT count(DISTINCT sb.pid) FROM sb JOIN visits v ON v.pid = sb.pid AND v.month = sb.month),"
        "  (SELECT count(*) FROM ob),"
        "  (SELECT count(*) FROM ob WHERE pid IN (SELECT pid FROM sb))",
        [*rparams, timezone, list(ONLINE), list(VISIT_TYPES), *_month_bounds(first, today, timezone),
         list(ONLINE)],
    )  # fmt: skip
    out.store_buyers, out.store_buyers_online_same_month = store_buyers, store_online
    out.online_buyers, out.online_buyers_also_in_store = online_buyers, online_store

    # 3. people and average LTV by channel-mix class (as of today, all history)
    defs = dict(computed or {})
    mix, ltv = defs.get("cross_channel_class"), defs.get("ltv")
    if isinstance(mix, Cases) and ltv is not None and not isinstance(ltv, Cases):
        today_n = (today - date(1970, 1, 1)).days
        mix_sql = to_sql(computed_query(mix, today=today_n, timezone=timezone, computed=defs))
        ltv_sql = to_sql(computed_query(ltv, today=today_n, timezone=timezone, computed=defs))
        rows = query(
            f"WITH c AS ({mix_sql}), l AS ({ltv_sql})"
            " SELECT CAST(c.value AS VARCHAR) AS class, count(*), avg(coalesce(TRY_CAST(l.value AS DOUBLE), 0))"
            " FROM c LEFT JOIN l ON l.person_id = c.person_id GROUP BY 1 ORDER BY 2 DESC, 1",
            [],
        )
        out.classes = [{"class": c, "people": n, "avg_ltv": _money(avg)} for c, n, avg in rows]

    # 4. top products: viewed online, bought in store
    product = (
        "coalesce(json_extract_string({j}, '$.sku'), json_extract_string({j}, '$.product_id'),"
        " json_extract_string({j}, '$.product_name'))"
    )
    name = "coalesce(json_extract_string({j}, '$.product_name'), json_extract_string({j}, '$.name'))"
    rows = query(
        f"WITH {ranged}, v AS (SELECT pid, {product.format(j='properties')} AS product,"
        f" {name.format(j='properties')} AS name FROM r WHERE type = 'track' AND event = 'view' AND channel IN ?)"
        " SELECT product, max(name), count(*), count(DISTINCT pid) FROM v WHERE product IS NOT NULL"
        " GROUP BY 1 ORDER BY 3 DESC, 4 DESC, 1 LIMIT ?",
        [*rparams, list(ONLINE), TOP],
    )
    out.viewed_online = [{"product": k, "name": n, "views": v, "people": p} for k, n, v, p in rows]
    rows = query(
        f"WITH {ranged},"
        " i AS (SELECT message_id, unnest(CAST(json_extract(properties, '$.items') AS JSON[])) AS item FROM r"
        "  WHERE type = 'track' AND event = 'buy' AND channel = 'store'"
        "  AND json_type(json_extract(properties, '$.items')) = 'ARRAY'),"
        f" p AS (SELECT message_id, {product.format(j='item')} AS product, {name.format(j='item')} AS name,"
        "  coalesce(TRY_CAST(json_extract_string(item, '$.quantity') AS DOUBLE), 1) AS qty,"
        "  coalesce(TRY_CAST(json_extract_string(item, '$.price') AS DOUBLE), 0) AS price FROM i)"
        " SELECT product, max(name), sum(qty), count(DISTINCT message_id), sum(qty * price)"
        " FROM p WHERE product IS NOT NULL GROUP BY 1 ORDER BY 3 DESC, 4 DESC, 1 LIMIT ?",
        [*rparams, TOP],
    )
    out.bought_in_store = [
        {"product": k, "name": n, "units": _count(u), "receipts": r, "revenue": _money(y)} for k, n, u, r, y in rows
    ]
    return out


def _count(x: Any) -> float | int:
    x = float(x or 0)
    return int(x) if x.is_integer() else x


def _month_bounds(first: date, last: date, timezone: str) -> tuple[datetime, datetime]:
    """Loose instants around the calendar months the range touches (web visits earlier or
    later in the month of a store purchase count)."""
    start = first.replace(day=1)
    end = (last.replace(day=1) + timedelta(days=32)).replace(day=1)
    return _loose_bounds(start, end - timedelta(days=1), timezone)
