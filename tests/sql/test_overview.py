"""The morning overview (`tsunagu.sql.overview`) on a real DuckDB analytics store.

A handful of people in Tokyo, chosen so that each number has one right answer worked out
by hand: a purchase at 23:30 and one at 00:30 the next day (the same UTC day), a store
buyer who browsed the web that month and one who browsed the month before, an anonymous
web purchase merged into a member, a purchase on a channel that is neither online nor a
store. The channel-mix classes are checked against the engine's own computed traits.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from tsunagu.core.computed import RETAIL
from tsunagu.core.engine import Engine
from tsunagu.core.errors import InvalidInput
from tsunagu.core.events import Event
from tsunagu.sql.overview import ChannelTotals, overview, today_in

from .history import analytics_store, in_time_order

TZ = "Asia/Tokyo"
TODAY = date(2026, 11, 20)
NOW = int(datetime(2026, 11, 20, 12, 0, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)
A = {"sku": "A", "product_name": "ウールコート"}
B = {"sku": "B", "product_name": "カーディガン"}
C = {"sku": "C", "product_name": "スニーカー"}


def _at(day: str, clock: str) -> int:
    return int(datetime.fromisoformat(f"2026-{day}T{clock}").replace(tzinfo=ZoneInfo(TZ)).timestamp() * 1000)


def _ev(i: int, kind: str, name: str | None, uid: str | None, when: int, channel: str, **props: Any) -> Event:
    aid = props.pop("anonymous_id", None)
    return Event(f"m{i:02d}", kind, name, uid, aid, when, NOW, channel, "S1" if channel == "store" else None,
                 json.dumps(props, ensure_ascii=False).encode(), {}, b"{}")  # fmt: skip


def _item(product: dict[str, str], quantity: int, price: int) -> dict[str, Any]:
    return {**product, "quantity": quantity, "price": price}


EVENTS = [
    # U1: a web purchase at 23:30 on the 19th, a store purchase at 00:30 on the 20th (one UTC day: the 19th)
    _ev(1, "track", "buy", "U1", _at("11-19", "23:30:00"), "web", revenue=1000),
    _ev(2, "track", "buy", "U1", _at("11-20", "00:30:00"), "store", revenue=2000, items=[_item(C, 1, 2000)]),
    _ev(3, "track", "view", "U1", _at("11-19", "23:00:00"), "web", **C),
    # U2: views A on the web on the 3rd, buys A twice and B in store on the 10th
    _ev(4, "track", "view", "U2", _at("11-03", "10:00:00"), "web", **A),
    _ev(
        5,
        "track",
        "buy",
        "U2",
        _at("11-10", "15:00:00"),
        "store",
        revenue=5000,
        items=[_item(A, 2, 1500), _item(B, 1, 2000)],
    ),
    # an anonymous visitor buys on the web on the 12th, then logs in as U2: one person
    _ev(6, "track", "buy", None, _at("11-12", "20:00:00"), "web", revenue=800, anonymous_id="a9"),
    _ev(7, "identify", None, "U2", _at("11-13", "09:00:00"), "web", anonymous_id="a9"),
    # U3: a page on the web in October, a store purchase in November (not the same month)
    _ev(8, "page", "Home", "U3", _at("10-28", "12:00:00"), "web"),
    _ev(9, "track", "buy", "U3", _at("11-02", "12:00:00"), "store", revenue=3000, items=[_item(B, 1, 3000)]),
    # U4: buys in the app only
    _ev(10, "track", "buy", "U4", _at("11-15", "12:00:00"), "app", revenue=4000),
    # U5: views only (A twice, C once)
    _ev(11, "track", "view", "U5", _at("11-18", "12:00:00"), "web", **A),
    _ev(12, "track", "view", "U5", _at("11-18", "12:05:00"), "app", **A),
    _ev(13, "track", "view", "U5", _at("11-18", "12:10:00"), "web", **C),
    # U6: a purchase on the server channel (not online, not in store); and one long ago
    _ev(14, "track", "buy", "U6", _at("11-20", "09:00:00"), "server", revenue=700),
    _ev(15, "track", "buy", "U3", _at("09-01", "12:00:00"), "store", revenue=9999, items=[_item(A, 5, 2000)]),
]


@pytest.fixture(scope="module")
def store() -> tuple[Engine, duckdb.DuckDBPyConnection]:
    engine = Engine()
    for d in RETAIL:
        engine.define("computed_trait", d["name"], {k: v for k, v in d.items() if k != "name"}, seq=1, now=NOW)
    for backfill in list(engine.live.backfills):  # nothing before them: empty back-fills
        engine.apply_backfill(backfill, [], "", True, NOW)
    order = in_time_order(EVENTS)
    pids = engine.apply(order).person_ids
    con = analytics_store(engine, order, pids)
    return engine, con


def _run(store: tuple[Engine, duckdb.DuckDBPyConnection], days: int) -> Any:
    engine, con = store
    return overview(
        lambda sql, params: con.execute(sql, list(params)).fetchall(),
        today=TODAY, days=days, timezone=TZ, computed=engine.live.computed,
    )  # fmt: skip


def test_revenue_and_buyers_per_tokyo_day_by_channel(store: Any) -> None:
    o = _run(store, 30)
    assert o.first_day == date(2026, 10, 22) and o.last_day == TODAY and len(o.daily) == 30
    by_day = {d["day"]: d for d in o.daily}
    # 23:30 and 00:30 are on two Tokyo days (one UTC day)
    assert by_day[date(2026, 11, 19)]["web"] == ChannelTotals(1000, 1, 1)
    assert by_day[date(2026, 11, 19)]["store"] == ChannelTotals(0, 0, 0)
    assert by_day[date(2026, 11, 20)]["store"] == ChannelTotals(2000, 1, 1)
    assert by_day[date(2026, 11, 20)]["web"] == ChannelTotals(0, 0, 0)
    assert by_day[date(2026, 11, 12)]["web"] == ChannelTotals(800, 1, 1)
    assert by_day[date(2026, 11, 15)]["app"] == ChannelTotals(4000, 1, 1)
    assert o.totals == {
        "web": ChannelTotals(1800, 2, 2),  # U1 and U2 (the anonymous purchase is U2's now)
        "app": ChannelTotals(4000, 1, 1),
        "store": ChannelTotals(10000, 3, 3),  # the September purchase is outside
    }
    assert o.all_channels == ChannelTotals(16500, 7, 5)  # the server purchase too


def test_the_days_agree_with_a_plain_query_on_the_events(store: Any) -> None:
    _, con = store
    want = {
        (d, ch): (rev, n)
        for d, ch, rev, n in con.execute(
            "SELECT CAST(timestamp AT TIME ZONE 'Asia/Tokyo' AS DATE), channel,"
            " sum(CAST(json_extract(properties, '$.revenue') AS DOUBLE)), count(*) FROM events"
            " WHERE event = 'buy' AND channel IN ('web', 'app', 'store')"
            " AND CAST(timestamp AT TIME ZONE 'Asia/Tokyo' AS DATE) >= DATE '2026-11-14' GROUP BY ALL"
        ).fetchall()
    }
    o = _run(store, 7)
    got = {(d["day"], ch): (d[ch].revenue, d[ch].orders) for d in o.daily for ch in ("web", "app", "store")}
    assert {k: v for k, v in got.items() if v[1]} == want


def test_cross_channel_shares(store: Any) -> None:
    o = _run(store, 30)
    # store buyers U1, U2, U3; U1 (web purchase) and U2 (web view) visited online in November, U3 in October
    assert (o.store_buyers, o.store_buyers_online_same_month) == (3, 2)
    # online buyers U1, U2 (merged), U4; U1 and U2 also bought in a store
    assert (o.online_buyers, o.online_buyers_also_in_store) == (3, 2)
    assert o.store_online_share == pytest.approx(2 / 3) and o.online_store_share == pytest.approx(2 / 3)
    week = _run(store, 7)
    assert (week.store_buyers, week.store_buyers_online_same_month) == (1, 1)
    assert (week.online_buyers, week.online_buyers_also_in_store) == (2, 1)


def test_channel_mix_classes_agree_with_the_engine(store: Any) -> None:
    engine, _ = store
    o = _run(store, 30)
    got = {c["class"]: (c["people"], c["avg_ltv"]) for c in o.classes}
    assert got == {
        "omnichannel buyer": (2, 4400),  # U1 3000, U2 5800 (with the merged purchase)
        "store only": (1, 12999),  # U3: all history, not the range
        "web only": (1, 4000),
        "browser, no purchase": (1, 0),
        "unknown": (1, 700),
    }
    by_class: dict[str, list[float]] = {}
    for p in engine.persons.values():
        values = engine.live.computed_values(p, NOW)
        by_class.setdefault(values["cross_channel_class"], []).append(values["ltv"] or 0)
    assert got == {k: (len(v), sum(v) / len(v)) for k, v in by_class.items()}
    assert [c["people"] for c in o.classes] == sorted((c["people"] for c in o.classes), reverse=True)


def test_top_products_viewed_online_and_bought_in_store(store: Any) -> None:
    o = _run(store, 30)
    assert o.viewed_online == [
        {"product": "A", "name": "ウールコート", "views": 3, "people": 2},
        {"product": "C", "name": "スニーカー", "views": 2, "people": 2},
    ]
    assert o.bought_in_store == [
        {"product": "B", "name": "カーディガン", "units": 2, "receipts": 2, "revenue": 5000},
        {"product": "A", "name": "ウールコート", "units": 2, "receipts": 1, "revenue": 3000},
        {"product": "C", "name": "スニーカー", "units": 1, "receipts": 1, "revenue": 2000},
    ]


def test_json_has_iso_days_numbers_and_shares(store: Any) -> None:
    body = _run(store, 7).to_json()
    json.dumps(body)  # plain JSON
    assert body["first_day"] == "2026-11-14" and body["daily"][-1]["day"] == "2026-11-20"
    assert body["daily"][-1]["store"] == {"revenue": 2000, "orders": 1, "buyers": 1}
    assert body["shares"]["online_store_share"] == 0.5 and body["shares"]["store_buyers"] == 1
    assert "store_buyers" not in body


def test_without_the_retail_traits_there_are_no_classes(store: Any) -> None:
    _, con = store
    o = overview(lambda sql, params: con.execute(sql, list(params)).fetchall(), today=TODAY, days=1, timezone=TZ)
    assert o.classes == [] and [d["day"] for d in o.daily] == [TODAY]


@pytest.mark.parametrize("days", [0, -1, 367, True, "30"])
def test_a_bad_range_names_the_field(store: Any, days: Any) -> None:
    with pytest.raises(InvalidInput) as err:
        _run(store, days)
    assert err.value.errors[0].field == "days"


def test_today_is_the_day_in_the_workspace_zone() -> None:
    assert today_in(_at("11-20", "00:30:00"), TZ) == date(2026, 11, 20)
    assert today_in(_at("11-20", "00:30:00"), "UTC") == date(2026, 11, 19)
