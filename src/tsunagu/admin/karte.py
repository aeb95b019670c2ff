"""The karte as a store's staff and a marketer read it: words in the UI's language.

Raw identifiers stay in the data; this module turns them into labels for the page:
trait and computed-trait names (the definitions' descriptions, or labels for the
retail set), enumerated values (`cross_channel_class`, gender), event names, channels,
identifier types and store ids (the store's name, as the workspace's own events give
it). It also picks what a seller asks first: what they bought, where, and what they
looked at.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core import userdata
from ..core.people import Person
from ..sql.reports import store_names_query

if TYPE_CHECKING:
    from ..pipeline import WorkspacePipeline

__all__ = ["CHANNEL_MIX", "Labels", "Shopping", "event_text", "match_reason", "shopping", "store_names"]

# -- store names -------------------------------------------------------------------------

_STORE_NAMES_TTL = 300.0  # seconds: stores are renamed rarely; a new one shows within minutes
_store_cache: dict[int, tuple[float, dict[str, str]]] = {}


async def store_names(pipe: WorkspacePipeline) -> dict[str, str]:
    """store id -> the name the workspace's events last gave it (`properties.store_name`).

    Until the Datahub brings a stores reference table, the events are where names are:
    POS receipts and check-ins carry them. Cached per workspace for a few minutes (the
    query scans the events with a store id).
    """
    key = id(pipe)
    hit = _store_cache.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < _STORE_NAMES_TTL:
        return hit[1]
    rows = await asyncio.to_thread(pipe.analytics.query, *store_names_query())
    names = {sid: name for sid, name in rows if name}
    _store_cache[key] = (now, names)
    return names


# -- labels -------------------------------------------------------------------------------

# (ja, en) for the names a retail workspace uses; anything else shows as it was named.
_TRAITS = {
    "name": ("氏名", "Name"), "email": ("メールアドレス", "Email"), "phone": ("電話番号", "Phone"),
    "member_rank": ("会員ランク", "Member rank"), "birthday": ("誕生日", "Birthday"), "gender": ("性別", "Gender"),
    "prefecture": ("都道府県", "Prefecture"), "favorite_store": ("よく行く店舗", "Favourite store"),
    "favourite_store": ("よく行く店舗", "Favourite store"), "pos_customer_id": ("POS顧客ID", "POS customer id"),
    "first_name": ("名", "First name"), "last_name": ("姓", "Last name"), "age": ("年齢", "Age"),
    "city": ("市区町村", "City"), "zip": ("郵便番号", "Postal code"), "member_since": ("入会日", "Member since"),
}  # fmt: skip
_COMPUTED_EN = {
    "online_purchase_count": "Online purchases (web, app)", "store_purchase_count": "Store purchases (receipts)",
    "online_purchase_amount": "Online spend (web, app)", "store_purchase_amount": "Store spend",
    "ltv": "Lifetime spend (LTV)", "purchase_count": "Purchases (all channels)", "aov": "Average order value",
    "days_since_last_purchase": "Days since the last purchase", "last_store": "Last store visited",
    "store_visits": "Store visits (check-ins)", "store_visits_90d": "Store visits, last 90 days",
    "favourite_category": "Most viewed category", "favourite_brand": "Most viewed brand",
    "favourite_category_bought": "Most bought category", "cross_channel_class": "How they shop with us",
    "outer_views_28d": "Outerwear views, last 28 days", "carts_30d": "Items added to cart, last 30 days",
}  # fmt: skip
#: the channel-mix classes of the retail `cross_channel_class` computed trait
CHANNEL_MIX = {
    "omnichannel buyer": ("店舗でもオンラインでも購入", "Buys in stores and online"),
    "store buyer who browses the web": ("店舗で購入・Webで閲覧", "Buys in stores, browses online"),
    "store only": ("店舗のみ", "Stores only"),
    "web buyer who visits stores": ("オンラインで購入・来店あり", "Buys online, visits stores"),
    "web only": ("オンラインのみ", "Online only"),
    "browser, no purchase": ("閲覧のみ（購入なし）", "Browses, has not bought"),
    "unknown": ("不明", "Unknown"),
}
_VALUES = {
    **{("cross_channel_class", k): v for k, v in CHANNEL_MIX.items()},
    ("gender", "female"): ("女性", "Female"), ("gender", "male"): ("男性", "Male"),
    ("gender", "other"): ("その他", "Other"), ("gender", "unknown"): ("不明", "Unknown"),
}  # fmt: skip
_EVENTS = {
    "view": ("商品閲覧", "Viewed"), "cart": ("カート追加", "Added to cart"), "buy": ("購入", "Purchase"),
    "favorite": ("お気に入り", "Favourited"), "checkin": ("来店", "Check-in"), "page": ("ページ閲覧", "Page view"),
    "$page": ("ページ閲覧", "Page view"), "screen": ("画面表示", "Screen"), "$screen": ("画面表示", "Screen"),
    "identify": ("会員情報", "Profile update"), "group": ("グループ", "Group"), "alias": ("ID統合", "Alias"),
    "segment_enter": ("セグメント参加", "Joined segment"), "segment_exit": ("セグメント離脱", "Left segment"),
    "merge": ("統合", "Merged"), "identity_conflict": ("識別子の競合", "Identifier conflict"),
    "search": ("検索", "Search"), "pickup": ("店舗受取", "Store pickup"), "return": ("返品", "Return"),
}  # fmt: skip
_CHANNELS = {
    "web": ("Web", "Web"), "app": ("アプリ", "App"), "store": ("店舗", "Store"), "email": ("メール", "Email"),
    "line": ("LINE", "LINE"), "server": ("サーバー", "Server"), "system": ("システム", "System"),
    "push": ("プッシュ", "Push"), "pos": ("POS", "POS"), "call_center": ("コールセンター", "Call center"),
}  # fmt: skip
_IDENTIFIERS = {
    "user_id": ("会員ID", "Member id"), "anonymous_id": ("匿名ID（ブラウザ・端末）", "Anonymous id (browser, device)"),
    "email": ("メールアドレス", "Email"), "phone": ("電話番号", "Phone"),
    "pos_customer_id": ("POS顧客ID", "POS customer id"), "line_id": ("LINE ID", "LINE id"),
    "device_token": ("プッシュ通知トークン", "Push token"),
}  # fmt: skip
_YEN = frozenset({"ltv", "aov", "online_purchase_amount", "store_purchase_amount"})
_STORE_VALUED = frozenset({"last_store", "favorite_store", "favourite_store"})


def _pick(pair: tuple[str, str] | None, lang: str) -> str | None:
    if pair is None:
        return None
    return pair[0] if lang == "ja" else pair[1]


@dataclass
class Labels:
    """Words for one page in one language."""

    lang: str
    stores: dict[str, str] = field(default_factory=dict)
    #: definition kind and name -> its description (what the marketer wrote)
    descriptions: dict[tuple[str, str], str] = field(default_factory=dict)

    def trait(self, name: str) -> str:
        return _pick(_TRAITS.get(name), self.lang) or name

    def computed(self, name: str) -> str:
        described = self.descriptions.get(("computed_trait", name))
        if self.lang == "ja" and described:
            return described
        return _COMPUTED_EN.get(name) or described or name

    def segment(self, name: str) -> str:
        return self.descriptions.get(("segment", name)) or name

    def value(self, name: str, value: Any) -> str:
        """A trait's or computed trait's value as the page shows it."""
        if value is None:
            return "—"
        if name in _YEN and isinstance(value, (int, float)):
            return f"¥{value:,.0f}"
        if name in _STORE_VALUED and isinstance(value, str):
            return self.store(value)
        if name == "days_since_last_purchase" and isinstance(value, int):
            return f"{value}日前" if self.lang == "ja" else f"{value} days ago"
        if isinstance(value, str):
            return _pick(_VALUES.get((name, value)), self.lang) or value
        if isinstance(value, bool):
            return ("はい" if value else "いいえ") if self.lang == "ja" else ("yes" if value else "no")
        if isinstance(value, float):
            return f"{value:,.1f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    def traits_text(self, traits: dict[str, Any]) -> str:
        """An identify on the timeline: the traits a seller recognises first, labelled."""
        first = [k for k in ("name", "member_rank", "email") if k in traits]
        keys = first or list(traits)[:3]
        sep = "、" if self.lang == "ja" else ", "
        return sep.join(f"{self.trait(k)}: {self.value(k, traits[k])}" for k in keys)

    def event(self, name: str | None) -> str:
        if not name:
            return ""
        return _pick(_EVENTS.get(name), self.lang) or name

    def channel(self, name: str) -> str:
        return _pick(_CHANNELS.get(name), self.lang) or name

    def identifier(self, typ: str) -> str:
        return _pick(_IDENTIFIERS.get(typ), self.lang) or typ

    def store(self, store_id: str | None) -> str:
        if not store_id:
            return ""
        return self.stores.get(store_id) or store_id


def match_reason(person: Person, q: str, labels: Labels) -> str:
    """Why a person came up in a search for `q`: the identifier or trait that holds it."""
    needle = q.strip().casefold()
    if not needle:
        return ""
    for typ, values in person.identifiers.items():
        for v in values:
            if v.casefold() == needle:
                return f"{labels.identifier(typ)}: {v}"
    for name, value in person.traits.items():
        if needle in str(value).casefold():
            return f"{labels.trait(name)}: {labels.value(name, value)}"
    for typ, values in person.identifiers.items():
        for v in values:
            if needle in v.casefold():
                return f"{labels.identifier(typ)}: {v}"
    return ""


def event_text(row: dict[str, Any], labels: Labels) -> str:
    """What one event was about, for the live page: the product, the page, the store, the segment."""
    p = row.get("properties") or {}
    typ, name = row["type"], row.get("event")
    if typ in ("segment_enter", "segment_exit"):
        return labels.segment(str(p.get("segment", "")))
    if typ in ("page", "screen"):
        return str(name or p.get("title") or p.get("path") or "")
    if typ == "identify":
        return labels.traits_text(row.get("traits") or {})
    if name == "buy":
        items = p.get("items") or []
        names = "、".join(str(i.get("product_name") or i.get("sku")) for i in items if isinstance(i, dict))
        revenue = p.get("revenue")
        amount = f"¥{revenue:,.0f}" if isinstance(revenue, (int, float)) else ""
        return " ".join(x for x in (amount, names) if x)
    if name == "checkin":
        return labels.store(row.get("store_id")) or str(p.get("store_name") or "")
    if "product_name" in p or "sku" in p:
        return str(p.get("product_name") or p.get("sku"))
    return ", ".join(f"{k}: {v}" for k, v in p.items() if not isinstance(v, (dict, list)))[:80]


# -- what a seller asks first -------------------------------------------------------------


@dataclass
class Shopping:
    purchases: int  # all channels
    spend: float
    online_purchases: int | None
    store_purchases: int | None
    last_purchase_days: int | None
    store_visits: int | None
    categories_viewed: list[tuple[str, int]]
    products_viewed: list[tuple[str, int]]
    category_bought: str | None
    stores: list[tuple[str, int]]  # store id, events there


def _top(data: userdata.Folded, name: str, today: int, n: int) -> list[tuple[str, int]]:
    stats = userdata.window_stats(data.data.get(name), "all_time", today, data.session_no)
    values = stats[userdata.VALUES] if stats else None
    if not values:
        return []
    return sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def shopping(person: Person, data: userdata.Folded, computed: dict[str, Any], today: int) -> Shopping:
    """Purchases, stores and what they looked at: the computed traits where the workspace
    has them, else the person's user data (folded from their events)."""
    buy = userdata.window_stats(data.data.get("buy"), "all_time", today, data.session_no)
    revenue = userdata.window_stats(data.data.get("buy.revenue"), "all_time", today, data.session_no)

    def number(name: str) -> int | None:
        v = computed.get(name)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    purchases = number("purchase_count")
    spend = computed.get("ltv")
    return Shopping(
        purchases=purchases if purchases is not None else (buy[userdata.N] if buy else 0),
        spend=spend if isinstance(spend, (int, float)) else (revenue[userdata.SUM] if revenue else 0),
        online_purchases=number("online_purchase_count"),
        store_purchases=number("store_purchase_count"),
        last_purchase_days=number("days_since_last_purchase"),
        store_visits=number("store_visits"),
        categories_viewed=_top(data, "view.category", today, 3),
        products_viewed=_top(data, "view.product_name", today, 5),
        category_bought=computed.get("favourite_category_bought") or None,
        stores=sorted(person.stores.items(), key=lambda kv: (-kv[1], kv[0])),
    )
