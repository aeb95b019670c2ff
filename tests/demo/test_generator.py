"""Tests for the demo data generator (tsunagu.demo.generator)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from tsunagu.demo import JST, STORES, Product, catalog, generate

END = date(2026, 3, 31)
SIZE = 1_000
SEED = 7

STORE_IDS = {s.store_id for s in STORES}
STORE_NAMES = {s.store_id: s.name for s in STORES}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+09:00$")
JAPANESE_RE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
KANJI_NAME_RE = re.compile(r"^[\u4e00-\u9fff々]+ [\u3040-\u30ff\u4e00-\u9fff々]+$")
PRODUCT_KEYS = {"sku", "product_name", "category", "brand", "price"}
TRAIT_KEYS = {"email", "name", "member_rank", "birthday", "gender", "prefecture", "favorite_store"}
RANKS = {"レギュラー", "シルバー", "ゴールド", "プラチナ"}


@pytest.fixture(scope="module")
def messages() -> list[dict[str, Any]]:
    """One year for 1,000 people: about 30,000 messages."""
    return list(generate(SIZE, seed=SEED, end=END))


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


# --------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------


def test_stores_are_real_japanese_locations() -> None:
    assert 10 <= len(STORES) <= 14
    assert len(STORE_IDS) == len(STORES)
    names = {s.name for s in STORES}
    assert {"渋谷店", "梅田店", "天神店", "名古屋栄店", "札幌店", "横浜みなとみらい店"} <= names
    for store in STORES:
        assert re.fullmatch(r"S\d{3}", store.store_id)
        assert store.name.endswith("店")
        assert store.prefecture.endswith(("都", "道", "府", "県"))
        assert JAPANESE_RE.search(store.city)


def test_catalog_is_deterministic_and_realistic() -> None:
    products = catalog()
    assert products == catalog(42)
    assert catalog(1) != products  # brands and prices depend on the seed
    assert 120 <= len(products) <= 200
    assert all(isinstance(p, Product) for p in products)
    assert len({p.sku for p in products}) == len(products)
    categories = {p.category for p in products}
    assert categories >= {"アウター", "トップス", "ボトムス", "ワンピース", "シューズ", "バッグ", "アクセサリー"}
    assert 6 <= len({p.brand for p in products}) <= 8
    assert {p.season for p in products} == {"aw", "ss", "all"}
    for p in products:
        assert JAPANESE_RE.search(p.name)
        # Japanese price points: 2,990 / 12,900 / 19,800 ...
        assert p.price % 100 in (90, 0) and str(p.price).endswith(("90", "800", "900")), p
        assert 900 <= p.price <= 60_000
    coats = [p for p in products if p.name.endswith("コート")]
    assert coats and all(16_900 <= p.price <= 49_800 for p in coats)
    tees = [p for p in products if "Tシャツ" in p.name]
    assert tees and all(1_990 <= p.price <= 5_990 for p in tees)


# --------------------------------------------------------------------------
# Determinism and arguments
# --------------------------------------------------------------------------


def test_same_seed_same_output_different_seed_different_output() -> None:
    first = list(generate(150, seed=3, end=END, days=90))
    assert first == list(generate(150, seed=3, end=END, days=90))
    assert first != list(generate(150, seed=4, end=END, days=90))


def test_size_zero_and_bad_arguments() -> None:
    assert list(generate(0, end=END)) == []
    with pytest.raises(ValueError):
        generate(-1)
    with pytest.raises(ValueError):
        generate(10, days=0)


def test_default_end_is_today_in_tokyo() -> None:
    before = datetime.now(JST).date()
    msgs = list(generate(20, days=3))
    after = datetime.now(JST).date()
    days = {parse(m["timestamp"]).date() for m in msgs}
    assert msgs and min(days) >= before - timedelta(days=2) and max(days) <= after


# --------------------------------------------------------------------------
# Message validity
# --------------------------------------------------------------------------


def test_timestamps_ascending_and_inside_window(messages: list[dict[str, Any]]) -> None:
    start = datetime(2025, 4, 1, tzinfo=JST)  # 365 days ending 2026-03-31
    stop = datetime(2026, 4, 1, tzinfo=JST)
    previous = start
    for m in messages:
        assert TS_RE.match(m["timestamp"]), m["timestamp"]
        ts = parse(m["timestamp"])
        assert ts.utcoffset() == timedelta(hours=9)
        assert start <= ts < stop
        assert ts >= previous
        previous = ts


def test_envelope(messages: list[dict[str, Any]]) -> None:
    ids = [m["messageId"] for m in messages]
    assert len(set(ids)) == len(ids)
    assert ids[0] == f"demo-{SEED}-000000001"
    for m in messages:
        assert m["type"] in {"identify", "track", "page"}
        assert m.get("userId") or m.get("anonymousId")
        if "userId" in m:
            assert re.fullmatch(r"M\d{6}", m["userId"])
        if "anonymousId" in m:
            assert UUID_RE.match(m["anonymousId"])
        assert m["context"]["channel"] in {"web", "app", "store"}


def test_average_events_per_person(messages: list[dict[str, Any]]) -> None:
    assert 25 <= len(messages) / SIZE <= 40


def test_track_events(messages: list[dict[str, Any]]) -> None:
    tracks = [m for m in messages if m["type"] == "track"]
    assert {m["event"] for m in tracks} == {"view", "cart", "favorite", "buy", "checkin"}
    for m in tracks:
        props = m["properties"]
        if m["event"] in ("view", "favorite"):
            assert set(props) == PRODUCT_KEYS
        elif m["event"] == "cart":
            assert set(props) == PRODUCT_KEYS | {"quantity"}
        elif m["event"] == "buy":
            assert props["currency"] == "JPY"
            assert props["items"] and all(set(i) == PRODUCT_KEYS | {"quantity"} for i in props["items"])
            assert props["revenue"] == sum(i["price"] * i["quantity"] for i in props["items"])
            assert isinstance(props["revenue"], int) and props["revenue"] > 0
        elif m["event"] == "checkin":
            assert m["context"]["channel"] == "store"
            assert props["method"] in {"app_qr", "pos"}
            assert props["store_name"] == STORE_NAMES[props["store_id"]]


def test_store_events_carry_a_real_store(messages: list[dict[str, Any]]) -> None:
    store_msgs = [m for m in messages if m["context"]["channel"] == "store"]
    assert store_msgs
    for m in store_msgs:
        assert m["context"]["store_id"] in STORE_IDS
        assert "userId" in m  # POS events are for identified members
        hour = parse(m["timestamp"]).hour
        assert 10 <= hour < 21  # opening hours
        if m.get("event") == "buy":
            assert m["properties"]["store_id"] == m["context"]["store_id"]
            assert re.fullmatch(r"E\d{5}", m["properties"]["staff_id"])
    order_ids = [m["properties"]["order_id"] for m in messages if m.get("event") == "buy"]
    assert len(set(order_ids)) == len(order_ids)


def test_web_and_app_context(messages: list[dict[str, Any]]) -> None:
    for m in messages:
        context = m["context"]
        if context["channel"] == "web":
            assert "anonymousId" in m
            assert context["userAgent"].startswith("Mozilla/5.0")
            assert set(context["page"]) == {"url", "path", "title", "referrer"}
            assert context["page"]["url"].startswith("https://shop.example.jp/")
        elif context["channel"] == "app":
            assert "anonymousId" in m
            assert {"type", "manufacturer", "model"} <= set(context["device"])
        if m["type"] == "page":
            assert context["channel"] == "web"
            assert set(m["properties"]) == {"url", "path", "title", "referrer"}
            assert m["name"] == m["properties"]["title"]
            assert m["properties"]["url"].endswith(m["properties"]["path"]) or "?utm_" in m["properties"]["url"]
    campaigns = [m["context"]["campaign"] for m in messages if "campaign" in m["context"]]
    assert campaigns and all(set(c) == {"source", "medium", "name"} for c in campaigns)


def test_identify_traits(messages: list[dict[str, Any]]) -> None:
    identifies = [m for m in messages if m["type"] == "identify"]
    assert identifies
    for m in identifies:
        traits = m["traits"]
        assert "userId" in m
        assert set(traits) >= TRAIT_KEYS
        assert traits["member_rank"] in RANKS
        assert traits["gender"] in {"female", "male", "other"}
        assert traits["favorite_store"] in STORE_IDS
        assert KANJI_NAME_RE.match(traits["name"]), traits["name"]
        born = date.fromisoformat(traits["birthday"])
        assert 17 <= (END - born).days // 365 <= 70
        if "phone" in traits:
            assert re.fullmatch(r"0[789]0-\d{4}-\d{4}", traits["phone"])
        if m["context"]["channel"] == "store":
            assert re.fullmatch(r"P\d{7}", traits["pos_customer_id"])
            assert "anonymousId" not in m
        else:
            assert "pos_customer_id" not in traits and "anonymousId" in m
    ranks = Counter(m["traits"]["member_rank"] for m in identifies)
    assert set(ranks) == RANKS
    with_phone = sum("phone" in m["traits"] for m in identifies)
    assert 0 < with_phone < len(identifies)  # some members only


def test_emails_only_on_example_domains(messages: list[dict[str, Any]]) -> None:
    emails = {m["traits"]["email"] for m in messages if m["type"] == "identify"}
    assert emails
    for email in emails:
        assert re.fullmatch(r"[a-z0-9._]+@example\.(jp|com)", email), email
    # The whole stream never mentions another mail domain.
    for m in messages:
        for address in re.findall(r"@[\w.-]+", str(m)):
            assert address in ("@example.jp", "@example.com"), address


def test_members_have_one_identity_each(messages: list[dict[str, Any]]) -> None:
    """Emails, phones and POS ids are unique per member (no false merges)."""
    seen: dict[str, dict[str, str]] = defaultdict(dict)
    for m in messages:
        if m["type"] == "identify":
            for key in ("email", "phone", "pos_customer_id"):
                if key in m["traits"]:
                    owner = seen[key].setdefault(m["traits"][key], m["userId"])
                    assert owner == m["userId"], (key, m["traits"][key])


def test_japanese_text_present(messages: list[dict[str, Any]]) -> None:
    product_names = {m["properties"]["product_name"] for m in messages if m.get("event") == "view"}
    assert product_names and all(JAPANESE_RE.search(n) for n in product_names)
    titles = [m["name"] for m in messages if m["type"] == "page"]
    assert any("セール" in t for t in titles)
    store_names = {m["properties"]["store_name"] for m in messages if m.get("event") == "checkin"}
    assert len(store_names) >= 8


# --------------------------------------------------------------------------
# Behaviour
# --------------------------------------------------------------------------


def classify(messages: list[dict[str, Any]]) -> Counter[str]:
    """Count people by cross-channel behaviour, as an analyst would see them."""
    online_buy: set[str] = set()
    store_buy: set[str] = set()
    store_seen: set[str] = set()
    web_seen: set[str] = set()
    linked: set[str] = set()
    anonymous: set[str] = set()
    for m in messages:
        user, channel = m.get("userId"), m["context"]["channel"]
        if user and "anonymousId" in m:
            linked.add(m["anonymousId"])
        if not user:
            anonymous.add(m["anonymousId"])
            continue
        (store_seen if channel == "store" else web_seen).add(user)
        if m.get("event") == "buy":
            (store_buy if channel == "store" else online_buy).add(user)
    counts: Counter[str] = Counter()
    for user in store_seen | web_seen:
        if user in online_buy:
            counts["web_store" if user in store_seen else "web_only"] += 1
        elif user in store_buy:
            counts["store_web" if user in web_seen else "store_only"] += 1
        else:
            counts["non_buyer"] += 1
    counts["anonymous"] = len(anonymous - linked)
    return counts


def test_cross_channel_shares(messages: list[dict[str, Any]]) -> None:
    counts = classify(messages)
    total = sum(counts.values())
    assert counts["non_buyer"] == 0  # every member buys somewhere
    expected = {"store_only": 0.35, "web_only": 0.20, "store_web": 0.25, "web_store": 0.10, "anonymous": 0.10}
    for segment, share in expected.items():
        assert counts[segment] / total == pytest.approx(share, abs=0.05), (segment, counts)


def test_identity_resolution_patterns(messages: list[dict[str, Any]]) -> None:
    first_seen: dict[str, bool] = {}  # anonymousId -> first message had a userId
    devices: dict[str, set[str]] = defaultdict(set)
    for m in messages:
        if "anonymousId" in m:
            first_seen.setdefault(m["anonymousId"], "userId" in m)
            if "userId" in m:
                devices[m["userId"]].add(m["anonymousId"])
    linked = {a for ids in devices.values() for a in ids}
    browsed_then_logged_in = [a for a in linked if not first_seen[a]]
    assert len(browsed_then_logged_in) > 0.3 * len(linked)
    two_devices = [u for u, ids in devices.items() if len(ids) == 2]
    assert 0.1 * len(devices) < len(two_devices) < 0.35 * len(devices)
    # The identify that links a device carries both ids.
    for m in messages:
        if m["type"] == "identify" and m["context"]["channel"] != "store":
            assert m["anonymousId"] in devices[m["userId"]]


def test_store_buyers_research_online_and_check_in(messages: list[dict[str, Any]]) -> None:
    viewed: dict[str, set[str]] = defaultdict(set)
    bought_after_viewing = 0
    for m in messages:
        if m.get("event") == "view" and "userId" in m:
            viewed[m["userId"]].add(m["properties"]["sku"])
        elif m.get("event") == "buy" and m["context"]["channel"] == "store":
            skus = {i["sku"] for i in m["properties"]["items"]}
            bought_after_viewing += bool(skus & viewed[m["userId"]])
    assert bought_after_viewing > 100
    methods = Counter(m["properties"]["method"] for m in messages if m.get("event") == "checkin")
    assert methods["app_qr"] > 0 and methods["pos"] > 0


def test_seasonality(messages: list[dict[str, Any]]) -> None:
    season = {p.sku: p.season for p in catalog(SEED)}
    by_months: dict[str, Counter[str]] = {"winter": Counter(), "summer": Counter()}
    for m in messages:
        if m.get("event") == "buy":
            month = parse(m["timestamp"]).month
            key = "winter" if month in (11, 12) else "summer" if month in (6, 7) else None
            if key:
                for item in m["properties"]["items"]:
                    by_months[key][season[item["sku"]]] += item["quantity"]
    winter, summer = by_months["winter"], by_months["summer"]
    assert winter["aw"] > 2 * winter["ss"]
    assert summer["ss"] > 2 * summer["aw"]


def test_sale_months_and_weekends_are_busier(messages: list[dict[str, Any]]) -> None:
    buys_by_month: Counter[int] = Counter()
    store_by_weekday: Counter[int] = Counter()
    for m in messages:
        ts = parse(m["timestamp"])
        if m.get("event") == "buy":
            buys_by_month[ts.month] += 1
        if m["context"]["channel"] == "store":
            store_by_weekday[ts.weekday()] += 1
    others = [buys_by_month[month] for month in range(1, 13) if month not in (1, 7)]
    average = sum(others) / len(others)
    assert buys_by_month[1] > 1.2 * average and buys_by_month[7] > 1.2 * average
    weekday_avg = sum(store_by_weekday[d] for d in range(5)) / 5
    assert store_by_weekday[5] > 1.3 * weekday_avg and store_by_weekday[6] > 1.2 * weekday_avg


def test_sale_prices_are_marked_down(messages: list[dict[str, Any]]) -> None:
    list_price = {p.sku: p.price for p in catalog(SEED)}
    january = [
        item
        for m in messages
        if m.get("event") == "buy" and parse(m["timestamp"]).month == 1
        for item in m["properties"]["items"]
    ]
    assert any(item["price"] < list_price[item["sku"]] for item in january)
    october = [
        item
        for m in messages
        if m.get("event") == "buy" and parse(m["timestamp"]).month == 10
        for item in m["properties"]["items"]
    ]
    assert october and all(item["price"] == list_price[item["sku"]] for item in october)


def test_web_traffic_peaks_in_the_evening(messages: list[dict[str, Any]]) -> None:
    hours = Counter(parse(m["timestamp"]).hour for m in messages if m["context"]["channel"] == "web")
    assert hours[21] > 2 * hours[9] and hours[21] > 5 * hours[4]
