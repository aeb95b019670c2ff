"""Deterministic demo data: one year of a Japanese fashion retailer.

The fictional retailer is *YOHAKU*, a mid-size select shop with twelve stores,
an online store (``https://shop.example.jp``) and a smartphone app.
:func:`generate` produces the messages its Segment-compatible sources would
have sent: ``page`` views and ``track`` events from the web and the app, POS
receipts and store check-ins, and ``identify`` calls whenever a member
registers or logs in.

How the data is built
---------------------
1. *People* are split into five behaviours with fixed shares: store-only
   buyers, web-only buyers, store buyers who research online, web buyers who
   also visit stores, and anonymous browsers who never log in.
2. Each person gets a *plan*: compact visit records (a web/app session or a
   store visit) with the products already chosen, from a random generator
   reseeded for that person.
3. All visits are sorted by start time and *rendered* into message dicts one
   visit at a time; a small heap re-orders the few visits that overlap.  Only
   the compact plan is held in memory, never the full list of messages.

Everything is driven by ``random.Random`` instances seeded from ``seed``, so
the same ``(size, seed, end, days)`` always yields identical messages.
"""

from __future__ import annotations

import heapq
import uuid
from bisect import bisect_right, insort
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from itertools import accumulate
from random import Random
from typing import Any, Generic, NamedTuple, TypeVar

__all__ = ["JST", "SHOP_NAME", "SHOP_URL", "STORES", "Product", "Store", "catalog", "generate"]

#: Japan has no daylight saving time, so a fixed offset is exact and needs no
#: tz database.
JST = timezone(timedelta(hours=9), "JST")

SHOP_NAME = "YOHAKU"
SHOP_URL = "https://shop.example.jp"
_SITE_TITLE = f"{SHOP_NAME} 公式オンラインストア"

_T = TypeVar("_T")


# --------------------------------------------------------------------------
# Random helpers
# --------------------------------------------------------------------------


class _Weighted(Generic[_T]):
    """A fixed set of weighted options, drawn by bisecting cumulative weights.

    Precomputing the cumulative weights once makes a draw much cheaper than
    ``Random.choices``, which matters at millions of draws.
    """

    __slots__ = ("cum", "items", "last", "total")

    def __init__(self, options: Iterable[tuple[_T, float]]) -> None:
        pairs = list(options)
        self.items = [item for item, _ in pairs]
        self.cum = list(accumulate(weight for _, weight in pairs))
        self.total = self.cum[-1]
        self.last = len(self.cum) - 1

    def index(self, rng: Random) -> int:
        i = bisect_right(self.cum, rng.random() * self.total)
        return i if i < self.last else self.last  # guards float rounding at the top

    def pick(self, rng: Random) -> _T:
        i = bisect_right(self.cum, rng.random() * self.total)
        return self.items[i if i < self.last else self.last]


def _between(rng: Random, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi); several times faster than ``randrange``."""
    return lo + int(rng.random() * (hi - lo))


def _count(rng: Random, expected: float) -> int:
    """``expected`` rounded up or down at random, but at least one."""
    return max(1, int(expected + rng.random()))


def _uuid4(rng: Random) -> str:
    """A uuid4-shaped id drawn from ``rng`` (``uuid.uuid4`` is not reproducible)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# --------------------------------------------------------------------------
# Stores and geography
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    """A physical store; ``store_id`` is what POS and check-in events carry."""

    store_id: str
    name: str
    prefecture: str
    city: str


STORES: tuple[Store, ...] = (
    Store("S001", "渋谷店", "東京都", "渋谷区"),
    Store("S002", "新宿店", "東京都", "新宿区"),
    Store("S003", "横浜みなとみらい店", "神奈川県", "横浜市西区"),
    Store("S004", "名古屋栄店", "愛知県", "名古屋市中区"),
    Store("S005", "梅田店", "大阪府", "大阪市北区"),
    Store("S006", "心斎橋店", "大阪府", "大阪市中央区"),
    Store("S007", "京都河原町店", "京都府", "京都市下京区"),
    Store("S008", "神戸三宮店", "兵庫県", "神戸市中央区"),
    Store("S009", "天神店", "福岡県", "福岡市中央区"),
    Store("S010", "札幌店", "北海道", "札幌市中央区"),
    Store("S011", "仙台店", "宮城県", "仙台市青葉区"),
    Store("S012", "広島店", "広島県", "広島市中区"),
)

# Relative footfall per store (flagship Tokyo/Osaka stores are busiest) and
# where each store's customers live.  Both are aligned with STORES.
_STORE_TRAFFIC = (1.6, 1.5, 1.2, 1.2, 1.4, 1.0, 0.9, 0.9, 1.1, 0.9, 0.7, 0.7)
# fmt: off
_CATCHMENT: tuple[tuple[tuple[str, float], ...], ...] = (
    (("東京都", 0.6), ("神奈川県", 0.2), ("埼玉県", 0.1), ("千葉県", 0.1)),
    (("東京都", 0.55), ("埼玉県", 0.25), ("千葉県", 0.1), ("神奈川県", 0.1)),
    (("神奈川県", 0.9), ("東京都", 0.1)),
    (("愛知県", 0.8), ("岐阜県", 0.12), ("三重県", 0.08)),
    (("大阪府", 0.75), ("兵庫県", 0.1), ("奈良県", 0.1), ("京都府", 0.05)),
    (("大阪府", 0.8), ("奈良県", 0.1), ("和歌山県", 0.1)),
    (("京都府", 0.8), ("滋賀県", 0.2)),
    (("兵庫県", 0.9), ("大阪府", 0.1)),
    (("福岡県", 0.85), ("佐賀県", 0.08), ("熊本県", 0.07)),
    (("北海道", 1.0),),
    (("宮城県", 0.8), ("福島県", 0.1), ("山形県", 0.1)),
    (("広島県", 0.85), ("岡山県", 0.1), ("山口県", 0.05)),
)
# fmt: on

# Online-only customers come from all over Japan: (prefecture, population in
# millions, index of the nearest store -> the member's favourite_store).
# fmt: off
_PREFECTURES: tuple[tuple[str, float, int], ...] = (
    ("東京都", 14.0, 0), ("神奈川県", 9.2, 2), ("大阪府", 8.8, 4),
    ("愛知県", 7.5, 3), ("埼玉県", 7.3, 1), ("千葉県", 6.3, 1),
    ("兵庫県", 5.4, 7), ("北海道", 5.1, 9), ("福岡県", 5.1, 8),
    ("静岡県", 3.6, 0), ("茨城県", 2.8, 1), ("広島県", 2.8, 11),
    ("京都府", 2.5, 6), ("宮城県", 2.3, 10), ("新潟県", 2.1, 1),
    ("長野県", 2.0, 1), ("岐阜県", 1.9, 3), ("栃木県", 1.9, 1),
    ("群馬県", 1.9, 1), ("岡山県", 1.9, 11), ("福島県", 1.8, 10),
    ("三重県", 1.7, 3), ("熊本県", 1.7, 8), ("鹿児島県", 1.6, 8),
    ("沖縄県", 1.5, 8), ("滋賀県", 1.4, 6), ("山口県", 1.3, 11),
    ("愛媛県", 1.3, 11), ("長崎県", 1.3, 8), ("奈良県", 1.3, 4),
    ("石川県", 1.1, 4), ("大分県", 1.1, 8), ("山形県", 1.0, 10),
    ("和歌山県", 0.9, 5), ("香川県", 0.9, 11), ("佐賀県", 0.8, 8),
)
# fmt: on
_STAFF_PER_STORE = 12

# Store picked for a visit away from home (commuting, travelling).
_ANY_STORE = _Weighted(enumerate(_STORE_TRAFFIC))
# Prefecture of a store shopper, given their home store.
_CATCHMENT_PICK = tuple(_Weighted(c) for c in _CATCHMENT)
# (prefecture, nearest store) of an online shopper.
_NATIONWIDE = _Weighted(((name, store), weight) for name, weight, store in _PREFECTURES)


# --------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    """A catalogue item.  ``price`` is the tax-included list price in yen.

    ``season`` is ``"aw"`` (autumn/winter), ``"ss"`` (spring/summer) or
    ``"all"`` (sold all year); it drives seasonal demand and sale markdowns.
    """

    sku: str
    name: str
    category: str
    brand: str
    price: int
    season: str


@dataclass(frozen=True)
class _Brand:
    name: str
    code: str
    lean: str  # "f" womenswear, "m" menswear, "u" unisex
    tier: float  # 0 = entry price point, 1 = premium


# House brands of the fictional retailer (invented names).
_BRANDS: tuple[_Brand, ...] = (
    _Brand("YOHAKU", "YH", "u", 0.5),
    _Brand("Hinata Standard", "HS", "u", 0.1),
    _Brand("kinari", "KN", "f", 0.45),
    _Brand("mizuiro", "MZ", "f", 0.3),
    _Brand("NORTH LANE TOKYO", "NL", "m", 0.6),
    _Brand("URAKATA WORKS", "UW", "m", 0.4),
    _Brand("TSUMUGI", "TM", "u", 0.9),
)

# category -> (SKU code, URL slug)
_CATEGORY_CODES = {
    "アウター": ("OT", "outer"),
    "ニット": ("KT", "knit"),
    "トップス": ("TP", "tops"),
    "ボトムス": ("BT", "bottoms"),
    "ワンピース": ("OP", "onepiece"),
    "シューズ": ("SH", "shoes"),
    "バッグ": ("BG", "bags"),
    "アクセサリー": ("AC", "accessories"),
}
_CATEGORIES = tuple(_CATEGORY_CODES)

# Real Japanese tax-included price points: x,990 (or x,490) below 10,000 yen,
# xx,900 / xx,800 above.
# fmt: off
_PRICE_LADDER = (
    990, 1490, 1990, 2490, 2990, 3490, 3990, 4490, 4990, 5990, 6990, 7990,
    8990, 9900, 10900, 11900, 12900, 13900, 14900, 15900, 16900, 17900, 18900,
    19800, 22800, 24800, 26800, 27900, 29800, 32800, 34800, 36800, 39800,
    42800, 44800, 49800, 54800, 59800,
)
# fmt: on

# (category, product name, season, lowest price, highest price, gender lean)
_TEMPLATES: tuple[tuple[str, str, str, int, int, str], ...] = (
    ("アウター", "ウールブレンド チェスターコート", "aw", 19800, 49800, "u"),
    ("アウター", "ダウンジャケット", "aw", 24800, 49800, "u"),
    ("アウター", "ステンカラーコート", "all", 16900, 34800, "u"),
    ("アウター", "ノーカラーウールコート", "aw", 19800, 39800, "f"),
    ("アウター", "キルティングジャケット", "aw", 9900, 16900, "u"),
    ("アウター", "ボアフリースブルゾン", "aw", 7990, 12900, "u"),
    ("アウター", "ダッフルコート", "aw", 19800, 34800, "u"),
    ("アウター", "ライトダウンベスト", "aw", 5990, 9900, "u"),
    ("アウター", "トレンチコート", "ss", 19800, 36800, "f"),
    ("アウター", "マウンテンパーカー", "all", 12900, 22800, "m"),
    ("アウター", "デニムジャケット", "ss", 8990, 14900, "u"),
    ("アウター", "リネンジャケット", "ss", 12900, 22800, "m"),
    ("ニット", "ウール クルーネックニット", "aw", 6990, 14900, "u"),
    ("ニット", "カシミヤタッチ Vネックニット", "aw", 4990, 9900, "u"),
    ("ニット", "ケーブル編み カーディガン", "aw", 7990, 14900, "f"),
    ("ニット", "モックネックニット", "aw", 5990, 12900, "m"),
    ("ニット", "タートルネックニット", "aw", 5990, 12900, "u"),
    ("ニット", "ニットベスト", "aw", 4990, 8990, "u"),
    ("ニット", "コットン サマーニット", "ss", 4990, 8990, "u"),
    ("ニット", "シアーカーディガン", "ss", 3990, 7990, "f"),
    ("トップス", "リネンシャツ", "ss", 5990, 12900, "u"),
    ("トップス", "オックスフォード ボタンダウンシャツ", "all", 3990, 8990, "m"),
    ("トップス", "ヘビーウェイト Tシャツ", "ss", 2990, 5990, "u"),
    ("トップス", "クルーネック Tシャツ", "ss", 1990, 3990, "u"),
    ("トップス", "ボーダー カットソー", "all", 3990, 6990, "u"),
    ("トップス", "フランネルシャツ", "aw", 4990, 8990, "m"),
    ("トップス", "スウェットパーカー", "aw", 5990, 12900, "u"),
    ("トップス", "スウェットシャツ", "all", 4990, 9900, "u"),
    ("トップス", "ブロードシャツ", "all", 3990, 8990, "u"),
    ("トップス", "リネンブラウス", "ss", 4990, 9900, "f"),
    ("トップス", "フリルブラウス", "all", 3990, 7990, "f"),
    ("トップス", "ロングスリーブ Tシャツ", "all", 2990, 4990, "u"),
    ("トップス", "ワッフル カットソー", "aw", 2990, 4990, "u"),
    ("トップス", "フレンチスリーブ ブラウス", "ss", 3990, 6990, "f"),
    ("ボトムス", "テーパードパンツ", "all", 5990, 12900, "u"),
    ("ボトムス", "ワイドデニムパンツ", "all", 6990, 14900, "u"),
    ("ボトムス", "ストレートデニムパンツ", "all", 5990, 13900, "m"),
    ("ボトムス", "リネン イージーパンツ", "ss", 4990, 8990, "u"),
    ("ボトムス", "ショートパンツ", "ss", 3990, 6990, "u"),
    ("ボトムス", "コーデュロイパンツ", "aw", 5990, 11900, "u"),
    ("ボトムス", "ウール スラックス", "aw", 8990, 16900, "m"),
    ("ボトムス", "プリーツスカート", "all", 5990, 12900, "f"),
    ("ボトムス", "チノパンツ", "all", 4990, 9900, "m"),
    ("ボトムス", "カーゴパンツ", "all", 5990, 11900, "u"),
    ("ボトムス", "マーメイドスカート", "all", 5990, 9900, "f"),
    ("ワンピース", "リネン シャツワンピース", "ss", 8990, 16900, "f"),
    ("ワンピース", "ニットワンピース", "aw", 7990, 16900, "f"),
    ("ワンピース", "ティアードワンピース", "ss", 6990, 13900, "f"),
    ("ワンピース", "キャミワンピース", "ss", 4990, 9900, "f"),
    ("ワンピース", "ジャンパースカート", "aw", 6990, 12900, "f"),
    ("ワンピース", "シャツワンピース", "all", 6990, 13900, "f"),
    ("シューズ", "レザーローファー", "all", 12900, 24800, "u"),
    ("シューズ", "キャンバス スニーカー", "all", 5990, 9900, "u"),
    ("シューズ", "レザー スニーカー", "all", 9900, 19800, "u"),
    ("シューズ", "サイドゴアブーツ", "aw", 14900, 29800, "u"),
    ("シューズ", "レザーサンダル", "ss", 5990, 12900, "u"),
    ("シューズ", "バレエシューズ", "all", 6990, 12900, "f"),
    ("シューズ", "ムートンブーツ", "aw", 9900, 19800, "f"),
    ("バッグ", "レザー トートバッグ", "all", 12900, 29800, "u"),
    ("バッグ", "キャンバス トートバッグ", "all", 2990, 5990, "u"),
    ("バッグ", "レザー ショルダーバッグ", "all", 9900, 24800, "f"),
    ("バッグ", "ナイロン リュックサック", "all", 5990, 14900, "u"),
    ("バッグ", "カゴバッグ", "ss", 4990, 9900, "f"),
    ("バッグ", "ミニショルダーバッグ", "all", 3990, 8990, "u"),
    ("アクセサリー", "ウール マフラー", "aw", 3990, 7990, "u"),
    ("アクセサリー", "カシミヤ ストール", "aw", 9900, 19800, "u"),
    ("アクセサリー", "ニットキャップ", "aw", 2490, 4990, "u"),
    ("アクセサリー", "バケットハット", "ss", 2990, 5990, "u"),
    ("アクセサリー", "レザーベルト", "all", 3990, 8990, "u"),
    ("アクセサリー", "ソックス 3足セット", "all", 1490, 1990, "u"),
    ("アクセサリー", "ゴールドフープ ピアス", "all", 2990, 6990, "f"),
    ("アクセサリー", "レザーグローブ", "aw", 4990, 9900, "u"),
    ("アクセサリー", "サングラス", "ss", 5990, 12900, "u"),
    ("アクセサリー", "ヘアクリップ", "all", 1490, 2990, "f"),
)


class _Catalog(NamedTuple):
    products: list[Product]
    popularity: list[float]  # relative demand: some items are bestsellers
    leans: list[str]  # "f", "m" or "u" per product


def _build_catalog(seed: int) -> _Catalog:
    rng = Random(seed * 31 + 7)
    cat = _Catalog([], [], [])
    serials: dict[tuple[str, str], int] = {}
    for category, name, season, lo, hi, lean in _TEMPLATES:
        # A womenswear item is never made by a menswear brand and vice versa.
        makers = [b for b in _BRANDS if lean == "u" or b.lean in (lean, "u")]
        for brand in rng.sample(makers, 3 if rng.random() < 0.2 else 2):
            code = _CATEGORY_CODES[category][0]
            serial = serials[brand.code, code] = serials.get((brand.code, code), 0) + 1
            cat.products.append(
                Product(
                    sku=f"{brand.code}-{code}{serial:03d}",
                    name=name,
                    category=category,
                    brand=brand.name,
                    price=_ladder_price(rng, lo, hi, brand.tier),
                    season=season,
                )
            )
            cat.popularity.append(rng.lognormvariate(0.0, 0.6))
            cat.leans.append(lean)
    return cat


def _ladder_price(rng: Random, lo: int, hi: int, tier: float) -> int:
    """A ladder price inside [lo, hi]; premium brands sit towards ``hi``."""
    points = [p for p in _PRICE_LADDER if lo <= p <= hi]
    position = min(1.0, max(0.0, rng.gauss(tier, 0.18)))
    return points[round(position * (len(points) - 1))]


def catalog(seed: int = 42) -> list[Product]:
    """The product catalogue :func:`generate` uses for the same ``seed``.

    About 150-170 products in eight categories from seven house brands.
    """
    return _build_catalog(seed).products


# --------------------------------------------------------------------------
# People: names and demographics
# --------------------------------------------------------------------------

# (kanji, romaji) — the most common Japanese family names, most common first.
# fmt: off
_FAMILY_NAMES = (
    ("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"),
    ("田中", "tanaka"), ("伊藤", "ito"), ("渡辺", "watanabe"),
    ("山本", "yamamoto"), ("中村", "nakamura"), ("小林", "kobayashi"),
    ("加藤", "kato"), ("吉田", "yoshida"), ("山田", "yamada"),
    ("佐々木", "sasaki"), ("山口", "yamaguchi"), ("松本", "matsumoto"),
    ("井上", "inoue"), ("木村", "kimura"), ("林", "hayashi"),
    ("斎藤", "saito"), ("清水", "shimizu"), ("山崎", "yamazaki"),
    ("森", "mori"), ("池田", "ikeda"), ("橋本", "hashimoto"), ("阿部", "abe"),
    ("石川", "ishikawa"), ("山下", "yamashita"), ("中島", "nakajima"),
    ("石井", "ishii"), ("小川", "ogawa"), ("前田", "maeda"),
    ("岡田", "okada"), ("長谷川", "hasegawa"), ("藤田", "fujita"),
    ("後藤", "goto"), ("近藤", "kondo"), ("村上", "murakami"),
    ("遠藤", "endo"), ("青木", "aoki"), ("坂本", "sakamoto"),
)
# fmt: on
# Common names are commoner: weight falls off gently with rank.
_FAMILY = _Weighted((n, 1.0 / (i + 3)) for i, n in enumerate(_FAMILY_NAMES))

# Given names differ by generation, so they are split at birth year 1990.
# fmt: off
_GIVEN_NAMES: dict[tuple[str, bool], tuple[tuple[str, str], ...]] = {
    ("female", True): (
        ("美咲", "misaki"), ("陽菜", "hina"), ("結衣", "yui"), ("さくら", "sakura"),
        ("葵", "aoi"), ("凛", "rin"), ("美月", "mizuki"), ("莉子", "riko"),
        ("七海", "nanami"), ("彩花", "ayaka"), ("芽衣", "mei"), ("愛美", "manami"),
    ),
    ("female", False): (
        ("恵", "megumi"), ("由美子", "yumiko"), ("真由美", "mayumi"), ("香織", "kaori"),
        ("智子", "tomoko"), ("裕子", "yuko"), ("麻衣", "mai"), ("直美", "naomi"),
        ("久美子", "kumiko"), ("愛", "ai"), ("綾", "aya"), ("千尋", "chihiro"),
    ),
    ("male", True): (
        ("翔太", "shota"), ("蓮", "ren"), ("悠真", "yuma"), ("陽翔", "haruto"),
        ("大翔", "hiroto"), ("湊", "minato"), ("颯太", "sota"), ("拓海", "takumi"),
        ("健太", "kenta"), ("大樹", "daiki"), ("悠斗", "yuto"), ("隼人", "hayato"),
    ),
    ("male", False): (
        ("大輔", "daisuke"), ("拓也", "takuya"), ("直樹", "naoki"), ("和也", "kazuya"),
        ("誠", "makoto"), ("浩二", "koji"), ("亮", "ryo"), ("健一", "kenichi"),
        ("修", "osamu"), ("剛", "tsuyoshi"), ("哲也", "tetsuya"), ("学", "manabu"),
    ),
}
# fmt: on
# fmt: off
_UNISEX_NAMES = (
    ("翼", "tsubasa"), ("遥", "haruka"), ("光", "hikaru"), ("薫", "kaoru"),
    ("真琴", "makoto"), ("渚", "nagisa"),
)
# fmt: on
# A select shop's membership skews female.
_GENDER = _Weighted((("female", 0.66), ("male", 0.32), ("other", 0.02)))

# Member ranks: share of members, and how much more active such members are.
_RANKS = ("レギュラー", "シルバー", "ゴールド", "プラチナ")
_RANK = _Weighted(enumerate((0.55, 0.25, 0.15, 0.05)))
_RANK_ACTIVITY = (1.0, 1.6, 2.4, 3.6)

# How much each gender shops each category (aligned with _CATEGORIES).
_CATEGORY_AFFINITY = {
    "f": (1.0, 1.0, 1.3, 1.0, 0.8, 0.5, 0.6, 0.7),
    "m": (1.1, 0.9, 1.5, 1.1, 0.0, 0.6, 0.4, 0.4),
}
# Weight of a product whose gender lean differs from the shopper's range.
_LEAN_FACTOR = {("f", "f"): 1.0, ("f", "m"): 0.2, ("m", "m"): 1.0, ("m", "f"): 0.0}

_EMAIL_PATTERN = _Weighted(
    (
        ("{gi}.{family}{n}", 0.4),  # m.sato123
        ("{given}.{family}{n}", 0.25),  # misaki.sato123
        ("{family}_{given}{n}", 0.2),  # sato_misaki123
        ("{given}{yy}x{n}", 0.15),  # misaki95x123
    )
)
_EMAIL_DOMAIN = _Weighted((("example.jp", 0.7), ("example.com", 0.3)))
_MOBILE_PREFIX = _Weighted((("090", 0.5), ("080", 0.35), ("070", 0.15)))


def _email(rng: Random, idx: int, family: str, given: str, born: date) -> str:
    """``m.sato123@example.jp`` style; the member number keeps it unique.

    Unique emails and phones matter: a shared one would make identity
    resolution merge two different customers.
    """
    local = _EMAIL_PATTERN.pick(rng).format(
        gi=given[0], given=given, family=family, yy=f"{born.year % 100:02d}", n=idx + 1
    )
    return f"{local}@{_EMAIL_DOMAIN.pick(rng)}"


def _phone(rng: Random, idx: int) -> str:
    # An affine map mod 10^8 is a bijection, so numbers never collide.
    digits = (idx * 7_919_321 + 12_345_678) % 100_000_000
    return f"{_MOBILE_PREFIX.pick(rng)}-{digits // 10_000:04d}-{digits % 10_000:04d}"


def _pos_id(idx: int) -> str:
    # Bijective for idx < 9,000,000 (314159 is coprime with 9,000,000).
    return f"P{(idx * 314_159 + 1_000_003) % 9_000_000 + 1_000_000:07d}"


# --------------------------------------------------------------------------
# Calendar: seasonality, sales, opening hours
# --------------------------------------------------------------------------

# Demand for seasonal lines by month (index 1..12); "all" items stay flat.
# fmt: off
_SEASON_DEMAND = {
    "aw": (0, 1.6, 1.0, 0.4, 0.15, 0.1, 0.1, 0.1, 0.3, 0.9, 1.6, 2.0, 2.0),
    "ss": (0, 0.15, 0.3, 0.9, 1.5, 1.8, 2.0, 2.0, 1.5, 0.6, 0.2, 0.1, 0.1),
    "all": (0,) + (1.0,) * 12,
}
# fmt: on
# 二八 (nippachi): February and August are the slow months of Japanese retail.
_MONTH_TRAFFIC = (0, 1.25, 0.75, 1.0, 1.0, 1.0, 0.9, 1.15, 0.8, 0.9, 1.05, 1.1, 1.3)
_STORE_WEEKDAY = (1.0, 0.9, 0.9, 1.0, 1.15, 1.8, 1.6)  # Mon..Sun
_WEB_WEEKDAY = (1.0, 1.0, 1.0, 1.0, 0.95, 1.1, 1.2)

# Store visits start 10:00-19:59 (stores close at 21:00).  Weekdays peak at
# lunch and after work; weekends are busy all afternoon.
# fmt: off
_STORE_HOUR = (
    _Weighted(zip(range(10, 20), (0.6, 0.8, 1.3, 1.2, 1.0, 1.0, 1.1, 1.3, 1.4, 1.0), strict=True)),
    _Weighted(zip(range(10, 20), (0.9, 1.3, 1.5, 1.6, 1.7, 1.6, 1.4, 1.2, 1.0, 0.6), strict=True)),
)
# fmt: on
# Online traffic by hour: commute, lunch, and a strong 20:00-23:00 peak.
# fmt: off
_WEB_HOUR = _Weighted(zip(range(24), (
    0.9, 0.5, 0.25, 0.15, 0.1, 0.15, 0.35, 0.7, 0.9, 0.8, 0.8, 0.9,
    1.4, 1.1, 0.9, 0.9, 1.0, 1.1, 1.2, 1.4, 1.7, 2.0, 2.0, 1.6,
), strict=True))
# fmt: on


def _in_winter_sale(day: date) -> bool:
    return day.month == 1


def _in_summer_sale(day: date) -> bool:
    return day.month == 7 or (day.month == 6 and day.day >= 28)


def _sale_discount(day: date, season: str) -> float:
    """Price factor for ``season`` items on ``day`` (1.0 = full price).

    The winter セール clears autumn/winter stock in January, the summer セール
    clears spring/summer stock from late June; markdowns deepen mid-sale.
    """
    if season == "aw" and _in_winter_sale(day):
        return 0.7 if day.day <= 14 else 0.5
    if season == "ss" and _in_summer_sale(day):
        return 0.7 if day.month == 6 or day.day <= 14 else 0.5
    return 1.0


def _sale_boost(day: date) -> float:
    """Extra traffic during the sales, strongest in their first days."""
    if _in_winter_sale(day):
        return 1.8 if day.day <= 10 else 1.3
    if _in_summer_sale(day):
        return 1.8 if day.month == 6 or day.day <= 10 else 1.3
    return 1.0


def _is_holiday_period(day: date) -> bool:
    """Golden Week, Obon and the year-end break shop like weekends."""
    md = (day.month, day.day)
    return (4, 29) <= md <= (5, 5) or (8, 11) <= md <= (8, 16) or (12, 28) <= md <= (12, 31)


def _store_day_weight(day: date) -> float:
    if (day.month, day.day) == (1, 1):
        return 0.0  # 元日休業: stores are closed on New Year's Day
    weekday = 5 if _is_holiday_period(day) else day.weekday()
    weight = _STORE_WEEKDAY[weekday] * _MONTH_TRAFFIC[day.month]
    if day.month == 1 and day.day in (2, 3):
        return weight * 3.0  # 初売り: lucky bags (福袋) draw crowds
    if day.month == 12 and 18 <= day.day <= 24:
        weight *= 1.3  # Christmas gifts
    return weight * _sale_boost(day)


def _web_day_weight(day: date, *, buying: bool) -> float:
    weight = _WEB_WEEKDAY[day.weekday()] * (0.5 + 0.5 * _MONTH_TRAFFIC[day.month])
    boost = _sale_boost(day)
    if (day.month, day.day) == (1, 1):
        boost = 2.5  # the online sale starts on New Year's Day
    elif day.month == 11 and day.day >= 21:
        boost = 1.3  # Black Friday has caught on in Japan
    # Purchases concentrate in sale periods more than browsing does.
    return weight * (boost * boost if buying else boost)


def _campaign_name(day: date) -> str:
    """The marketing campaign running on ``day`` (used for UTM tags)."""
    year = day.year
    if _in_winter_sale(day):
        return f"winter_sale_{year}"
    if _in_summer_sale(day):
        return f"summer_sale_{year}"
    if day.month in (3, 4):
        return f"{year}ss_new_arrivals"
    if day.month in (9, 10):
        return f"{year}aw_new_arrivals"
    if day.month == 11 and day.day >= 21:
        return f"black_friday_{year}"
    if day.month == 12:
        return f"holiday_gift_{year}"
    return "weekly_pickup"


# --------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------

# fmt: off
_USER_AGENTS = {
    "sp": (
        (0.68, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) "
               "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 "
               "Safari/604.1"),
        (0.32, "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
               "(KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"),
    ),
    "pc": (
        (0.6, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
              "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
        (0.4, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.4 Safari/605.1.15"),
    ),
}
# fmt: on
# fmt: off
_APP_DEVICES = (
    (0.68, {"type": "ios", "manufacturer": "Apple", "model": "iPhone15,2"},
     {"name": "iOS", "version": "17.5.1"}),
    (0.14, {"type": "android", "manufacturer": "Google", "model": "Pixel 8"},
     {"name": "Android", "version": "14"}),
    (0.1, {"type": "android", "manufacturer": "Sony", "model": "XQ-DQ44"},
     {"name": "Android", "version": "14"}),
    (0.08, {"type": "android", "manufacturer": "SHARP", "model": "SH-M26"},
     {"name": "Android", "version": "13"}),
)
# fmt: on
_APP_INFO = {"name": "YOHAKU", "version": "4.2.0", "build": "420"}
# Which user agent / app device a new device gets, by kind.
_PROFILE = {
    "sp": _Weighted(enumerate(weight for weight, _ in _USER_AGENTS["sp"])),
    "pc": _Weighted(enumerate(weight for weight, _ in _USER_AGENTS["pc"])),
    "app": _Weighted(enumerate(weight for weight, _, _ in _APP_DEVICES)),
}
_FIRST_DEVICE = _Weighted((("sp", 0.55), ("pc", 0.3), ("app", 0.15)))
# Sessions a device browses anonymously before its owner logs in on it.
_ANONYMOUS_SESSIONS = _Weighted(((0, 0.4), (1, 0.3), (2, 0.2), (3, 0.1)))


@dataclass(frozen=True, slots=True)
class _Device:
    """A browser or app install; ``profile`` indexes its user agent or model."""

    kind: str  # "pc" | "sp" | "app"
    anonymous_id: str
    profile: int


# --------------------------------------------------------------------------
# Plans: people and their compact visit records
# --------------------------------------------------------------------------

# Behaviour segments and their shares of all people.
_STORE_ONLY, _WEB_ONLY, _STORE_WEB, _WEB_STORE, _ANONYMOUS = range(5)
_SEGMENT_SHARES = (0.35, 0.20, 0.25, 0.10, 0.10)


@dataclass(slots=True)
class _Person:
    idx: int
    segment: int
    user_id: str | None  # None for anonymous browsers
    name: str
    email: str
    phone: str | None
    rank: str
    birthday: str
    gender: str
    prefecture: str
    home_store: int
    pos_id: str | None  # POS customer number of members registered in store
    shops_as: str  # "f" or "m": which product range they browse
    favourite_categories: tuple[str, ...]
    devices: tuple[_Device, ...]
    join_day: int  # first day of activity within the window
    last_day: int  # last day of activity (before the window's end if lapsed)
    activity: float  # visit-frequency multiplier


_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_MINUTE_MS = 60_000
# A person's visits start at least this far apart so they never overlap:
# web sessions last under 50 minutes, store visits under an hour.
_MIN_GAP_MS = 90 * _MINUTE_MS

# Login state of a web/app session.
_ANON, _LOGIN, _MEMBER = 0, 1, 2
# Check-in method of a store visit.
_NO_CHECKIN, _CHECKIN_POS, _CHECKIN_APP = 0, 1, 2

_Basket = tuple[tuple[int, int], ...]  # (product index, quantity)
_BASKET_SIZE = _Weighted(((1, 0.55), (2, 0.28), (3, 0.12), (4, 0.05)))


class _WebSession(NamedTuple):
    start: int  # ms since midnight (JST) of the window's first day
    person: int
    seq: int  # per-person ordinal: (start, person, seq) is unique
    device: int
    login: int  # _ANON, _LOGIN (identify happens here) or _MEMBER
    viewed: tuple[int, ...]
    favorites: tuple[int, ...]
    cart: tuple[int, ...]
    order: _Basket  # empty unless the session ends in a purchase
    store_check: int  # store whose page is checked before a visit, or -1


class _StoreVisit(NamedTuple):
    start: int
    person: int
    seq: int
    store: int
    register: bool  # POS membership registration (identify) happens here
    checkin: int
    basket: _Basket  # empty for a look-around visit


_Visit = _WebSession | _StoreVisit


class _World:
    """What every person shares: catalogue, calendar weights, sale prices."""

    def __init__(self, seed: int, start: date, days: int) -> None:
        self.seed = seed
        self.start = start
        self.days = days
        cat = _build_catalog(seed)
        self.products = cat.products
        calendar = [start + timedelta(days=d) for d in range(days)]
        self.dates = [d.isoformat() for d in calendar]
        self.compact_dates = [d.strftime("%Y%m%d") for d in calendar]
        self.month = [d.month for d in calendar]
        self.busy_day = [d.weekday() >= 5 or _is_holiday_period(d) for d in calendar]
        self.store_cum = list(accumulate(_store_day_weight(d) for d in calendar))
        self.web_cum = list(accumulate(_web_day_weight(d, buying=False) for d in calendar))
        self.buy_cum = list(accumulate(_web_day_weight(d, buying=True) for d in calendar))
        self.discount = [{s: _sale_discount(d, s) for s in _SEASON_DEMAND} for d in calendar]
        self.in_sale = [_sale_boost(d) > 1.0 for d in calendar]
        self.campaign_names = [_campaign_name(d) for d in calendar]
        self._build_demand(cat)

    def _build_demand(self, cat: _Catalog) -> None:
        """Product weights per (range, month), overall and per category."""
        self.demand: dict[tuple[str, int], _Weighted[int]] = {}
        self.category_demand: dict[tuple[str, int, str], _Weighted[int]] = {}
        for shops_as in ("f", "m"):
            affinity = dict(zip(_CATEGORIES, _CATEGORY_AFFINITY[shops_as], strict=True))
            for month in range(1, 13):
                weights = [
                    cat.popularity[i]
                    * _SEASON_DEMAND[p.season][month]
                    * affinity[p.category]
                    * _LEAN_FACTOR.get((shops_as, cat.leans[i]), 1.0)
                    for i, p in enumerate(cat.products)
                ]
                self.demand[shops_as, month] = _Weighted(enumerate(weights))
                for category in _CATEGORIES:
                    options = [(i, w) for i, w in enumerate(weights) if w > 0 and cat.products[i].category == category]
                    if options:  # menswear shoppers have no ワンピース
                        self.category_demand[shops_as, month, category] = _Weighted(options)

    def price(self, product: int, day: int) -> int:
        """Selling price on ``day``: the list price, or the marked-down one."""
        item = self.products[product]
        factor = self.discount[day][item.season]
        if factor == 1.0:
            return item.price
        return int(item.price * factor) // 10 * 10  # 30%/50% OFF, yen rounded down

    def pick_day(self, cum: list[float], lo: int, hi: int | None, rng: Random) -> int:
        """A day in [lo, hi] drawn with the calendar weights ``cum``."""
        hi = len(cum) - 1 if hi is None else min(hi, len(cum) - 1)
        base = cum[lo - 1] if lo > 0 else 0.0
        u = base + rng.random() * (cum[hi] - base)
        return min(max(bisect_right(cum, u), lo), hi)


class _Timeline:
    """Start times booked for one person; refuses visits that would overlap."""

    def __init__(self) -> None:
        self.starts: list[int] = []

    def reserve(self, start: int) -> bool:
        i = bisect_right(self.starts, start)
        if i and start - self.starts[i - 1] < _MIN_GAP_MS:
            return False
        if i < len(self.starts) and self.starts[i] - start < _MIN_GAP_MS:
            return False
        insort(self.starts, start)
        return True

    def book(self, sample: Callable[[], int], n: int, *, required: bool) -> list[int]:
        """Book up to ``n`` sampled starts, sorted; retry if one is required."""
        booked = [t for t in (sample() for _ in range(n)) if self.reserve(t)]
        for _ in range(50):
            if booked or not required:
                break
            t = sample()
            if self.reserve(t):
                booked.append(t)
        return sorted(booked)


class _Planner:
    """Turns a person index into a :class:`_Person` and their visit plan."""

    def __init__(self, world: _World) -> None:
        self.w = world
        self.rng = Random()

    def plan(self, idx: int, segment: int) -> tuple[_Person, list[_Visit]]:
        # Reseeding per person makes a plan depend only on (seed, idx, segment)
        # and the window, not on how many draws earlier people happened to use.
        self.rng.seed(self.w.seed * 1_000_003 + idx)
        person = self._person(idx, segment)
        if segment == _STORE_ONLY:
            return person, self._plan_store_only(person)
        if segment == _ANONYMOUS:
            return person, self._plan_anonymous(person)
        return person, self._plan_online_member(person)

    # -- who they are ------------------------------------------------------

    def _person(self, idx: int, segment: int) -> _Person:
        rng, w = self.rng, self.w
        gender = _GENDER.pick(rng)
        shops_as = {"female": "f", "male": "m"}.get(gender) or rng.choice("fm")
        age = int(rng.triangular(18, 67, 31))
        end = w.start + timedelta(days=w.days - 1)
        born = end - timedelta(days=age * 365 + age // 4 + _between(rng, 0, 365))
        family, family_romaji = _FAMILY.pick(rng)
        given, given_romaji = rng.choice(_GIVEN_NAMES.get((gender, born.year >= 1990), _UNISEX_NAMES))
        registers_at_pos = segment in (_STORE_ONLY, _STORE_WEB)
        if registers_at_pos:
            # Store shoppers live in the catchment of their home store.
            home = _ANY_STORE.index(rng)
            prefecture = _CATCHMENT_PICK[home].pick(rng)
        else:
            prefecture, home = _NATIONWIDE.pick(rng)
        rank = _RANK.pick(rng)
        categories = [c for c, a in zip(_CATEGORIES, _CATEGORY_AFFINITY[shops_as], strict=True) if a]
        has_phone = rng.random() < (0.8 if registers_at_pos else 0.4)
        join_day, last_day = self._active_days()
        return _Person(
            idx=idx,
            segment=segment,
            user_id=None if segment == _ANONYMOUS else f"M{idx + 1:06d}",
            name=f"{family} {given}",
            email=_email(rng, idx, family_romaji, given_romaji, born),
            phone=_phone(rng, idx) if has_phone else None,
            rank=_RANKS[rank],
            birthday=born.isoformat(),
            gender=gender,
            prefecture=prefecture,
            home_store=home,
            pos_id=_pos_id(idx) if registers_at_pos else None,
            shops_as=shops_as,
            favourite_categories=tuple(rng.sample(categories, 2)),
            devices=self._devices(segment),
            join_day=join_day,
            last_day=last_day,
            activity=_RANK_ACTIVITY[rank] * rng.lognormvariate(0.0, 0.45),
        )

    def _active_days(self) -> tuple[int, int]:
        """First and last day of activity.

        70% were customers before the window opened and a quarter of those
        lapse during it; the rest join during it.  Without lapsing members the
        data would show steady growth all year.
        """
        rng, days = self.rng, self.w.days
        if rng.random() < 0.7:
            lapses = rng.random() < 0.25
            return 0, _between(rng, min(60, days - 1), days) if lapses else days - 1
        return _between(rng, 0, days), days - 1

    def _years_active(self, person: _Person) -> float:
        return (person.last_day - person.join_day + 1) / 365

    def _devices(self, segment: int) -> tuple[_Device, ...]:
        rng = self.rng
        if segment == _STORE_ONLY:
            return ()
        first = _FIRST_DEVICE.pick(rng)
        if segment == _WEB_STORE and rng.random() < 0.3:
            first = "app"  # people who also go to stores like the app's QR check-in
        kinds = [first]
        # A minority browse on two devices and log in on both.
        if segment != _ANONYMOUS and rng.random() < 0.2:
            kinds.append(rng.choice([k for k in ("sp", "pc", "app") if k != first]))
        return tuple(_Device(k, _uuid4(rng), _PROFILE[k].pick(rng)) for k in kinds)

    # -- when they come ----------------------------------------------------

    def _store_start(self, person: _Person) -> int:
        rng, w = self.rng, self.w
        day = w.pick_day(w.store_cum, person.join_day, person.last_day, rng)
        hour = _STORE_HOUR[w.busy_day[day]].pick(rng)
        return day * _DAY_MS + hour * _HOUR_MS + _between(rng, 0, _HOUR_MS)

    def _web_start(self, day: int) -> int:
        hour = _WEB_HOUR.pick(self.rng)
        if day == self.w.days - 1 and hour == 23:
            hour = 22  # a session crossing midnight would leave the window
        return day * _DAY_MS + hour * _HOUR_MS + _between(self.rng, 0, _HOUR_MS)

    def _web_start_on(self, cum: list[float], lo: int, hi: int | None = None) -> int:
        return self._web_start(self.w.pick_day(cum, lo, hi, self.rng))

    def _research_start(self, visit_start: int) -> int | None:
        """When a store buyer looks an item up online: 0-10 days before going."""
        rng = self.rng
        days_before = min(10, int(rng.expovariate(1 / 2.5)))
        if days_before == 0:
            t = visit_start - _between(rng, _MIN_GAP_MS, 5 * _HOUR_MS)
        else:
            t = self._web_start(visit_start // _DAY_MS - days_before)
        return t if t >= 0 else None

    def _visit_store(self, person: _Person) -> int:
        # Mostly the home store; sometimes another branch.
        return person.home_store if self.rng.random() < 0.85 else _ANY_STORE.index(self.rng)

    # -- segment plans -------------------------------------------------------

    def _plan_store_only(self, person: _Person) -> list[_Visit]:
        n = _count(self.rng, 3.4 * person.activity * self._years_active(person))
        starts = _Timeline().book(lambda: self._store_start(person), n, required=True)
        visits: list[_Visit] = []
        for seq, start in enumerate(starts):
            # Without the app a visit is only seen at the till, so every
            # visit is a purchase; half the time the member card is scanned.
            checkin = _CHECKIN_POS if self.rng.random() < 0.5 else _NO_CHECKIN
            basket = self._basket(person, start // _DAY_MS)
            store = self._visit_store(person)
            visits.append(_StoreVisit(start, person.idx, seq, store, seq == 0, checkin, basket))
        return visits

    def _plan_anonymous(self, person: _Person) -> list[_Visit]:
        rng, w = self.rng, self.w
        first = _between(rng, 0, w.days)
        n = 1 + min(7, int(rng.expovariate(1 / 2.0)))
        # An anonymous visitor's sessions cluster within a couple of months.
        starts = _Timeline().book(lambda: self._web_start_on(w.web_cum, first, first + 60), n, required=True)
        sessions = [(t, False, -1) for t in starts]
        return [*self._web_sessions(person, sessions, [0] * len(starts), [_ANON] * len(starts))]

    def _plan_online_member(self, person: _Person) -> list[_Visit]:
        """Members who use the web or the app, and possibly stores too."""
        rng, w = self.rng, self.w
        timeline = _Timeline()
        activity = person.activity * self._years_active(person)

        def book_store(expected: float) -> list[int]:
            return timeline.book(
                lambda: self._store_start(person),
                _count(rng, expected),
                required=True,
            )

        store_starts: list[int] = []
        if person.segment == _STORE_WEB:
            store_starts = book_store(2.2 * activity)
        elif person.segment == _WEB_STORE:
            store_starts = book_store(1.2 * activity)
        stores = [self._visit_store(person) for _ in store_starts]
        # What each store visit would buy; research sessions look it up first.
        baskets = [self._basket(person, t // _DAY_MS) for t in store_starts]

        sessions: list[tuple[int, bool, int]] = []  # (start, buys online, researched visit)
        if person.segment == _STORE_WEB:
            # Webrooming: look the item up online in the days before a visit.
            for i, start in enumerate(store_starts):
                t = self._research_start(start) if rng.random() < 0.55 else None
                if t is not None and timeline.reserve(t):
                    sessions.append((t, False, i))
            browse = _count(rng, 3.6 * activity)
        else:
            buys = timeline.book(
                lambda: self._web_start_on(w.buy_cum, person.join_day, person.last_day),
                _count(rng, 0.9 * activity),
                required=True,
            )
            sessions.extend((t, True, -1) for t in buys)
            browse = _count(rng, 4.0 * activity)
        browsing = timeline.book(
            lambda: self._web_start_on(w.web_cum, person.join_day, person.last_day),
            browse,
            required=not sessions,
        )
        sessions.extend((t, False, -1) for t in browsing)
        sessions.sort()

        devices, logins = self._devices_and_logins(person, [buys for _, buys, _ in sessions])
        web = self._web_sessions(person, sessions, devices, logins, baskets, stores)
        return [*web, *self._member_store_visits(person, store_starts, stores, baskets, web)]

    def _devices_and_logins(self, person: _Person, buys: list[bool]) -> tuple[list[int], list[int]]:
        """Device and login state of each session (sessions in time order).

        Each device browses anonymously for a few sessions, then its owner
        logs in (an identify carrying both ids) and stays logged in.  Buying
        needs a login, so a device logs in no later than its first purchase.
        """
        rng = self.rng
        n = len(buys)
        devices = [0] * n
        if len(person.devices) == 2 and n >= 2:
            switch = 1 + int(rng.random() * (n - 1))  # second device's first session
            devices[switch] = 1
            for i in range(switch + 1, n):
                devices[i] = int(rng.random() < 0.5)
        logins = [_MEMBER] * n
        for d in range(len(person.devices)):
            mine = [i for i in range(n) if devices[i] == d]
            if not mine:
                continue
            first_buy = next((k for k, i in enumerate(mine) if buys[i]), len(mine) - 1)
            login_at = min(_ANONYMOUS_SESSIONS.pick(rng), first_buy)
            for k, i in enumerate(mine):
                logins[i] = _ANON if k < login_at else _LOGIN if k == login_at else _MEMBER
        return devices, logins

    def _web_sessions(
        self,
        person: _Person,
        sessions: list[tuple[int, bool, int]],
        devices: list[int],
        logins: list[int],
        baskets: Sequence[_Basket] = (),
        stores: Sequence[int] = (),
    ) -> list[_WebSession]:
        """Fill each planned session with what it views, likes and buys."""
        rng = self.rng
        favourites: list[int] = []  # favourites are often bought later
        out: list[_WebSession] = []
        for seq, (start, buys, researched) in enumerate(sessions):
            day = start // _DAY_MS
            order = self._basket(person, day, favourites) if buys else ()
            wanted = [p for p, _ in order]
            store_check = -1
            if researched >= 0:
                wanted.append(baskets[researched][0][0])
                store_check = stores[researched]
            extra = min(5, int(rng.expovariate(1 / 1.4))) + (0 if wanted else 1)
            viewed = list(dict.fromkeys(wanted + [self._product(person, day) for _ in range(extra)]))
            rng.shuffle(viewed)

            liked: list[int] = []
            if logins[seq] != _ANON:  # favourites live in the member's account
                for p in viewed:
                    if rng.random() < (0.35 if p in wanted and not buys else 0.08):
                        liked.append(p)
                favourites.extend(liked)
            cart = wanted if buys else []
            if not buys and rng.random() < 0.1:
                cart = [rng.choice(viewed)]  # an abandoned cart
            out.append(
                _WebSession(
                    start,
                    person.idx,
                    seq,
                    devices[seq],
                    logins[seq],
                    tuple(viewed),
                    tuple(liked),
                    tuple(cart),
                    order,
                    store_check,
                )
            )
        return out

    def _member_store_visits(
        self,
        person: _Person,
        starts: list[int],
        stores: list[int],
        baskets: list[_Basket],
        sessions: list[_WebSession],
    ) -> list[_Visit]:
        """Store visits of members who also use the web or the app."""
        rng = self.rng
        # The app's QR check-in works once the member has logged in to the app.
        app_login = min(
            (s.start for s in sessions if s.login != _ANON and person.devices[s.device].kind == "app"),
            default=None,
        )
        visits: list[_Visit] = []
        bought = False
        for k, (start, store, basket) in enumerate(zip(starts, stores, baskets, strict=True)):
            if app_login is not None and app_login < start and rng.random() < 0.8:
                checkin = _CHECKIN_APP
                # Checked in, then left without buying: store buyers sometimes,
                # online buyers (showrooming) mostly.  A store buyer who has
                # not bought yet does buy on their last visit.
                must_buy = person.segment == _STORE_WEB and k == len(starts) - 1 and not bought
                leave = 0.15 if person.segment == _STORE_WEB else 0.7
                if not must_buy and rng.random() < leave:
                    basket = ()
            else:
                # Without an app check-in the visit is only seen at the till.
                checkin = _CHECKIN_POS if rng.random() < 0.6 else _NO_CHECKIN
            bought = bought or bool(basket)
            register = k == 0 and person.pos_id is not None
            seq = len(sessions) + k
            visits.append(_StoreVisit(start, person.idx, seq, store, register, checkin, basket))
        return visits

    # -- what they look at and buy -------------------------------------------

    def _product(self, person: _Person, day: int) -> int:
        """A product this person would look at on ``day`` (season-aware)."""
        rng, w = self.rng, self.w
        month = w.month[day]
        if rng.random() < 0.35:
            category = rng.choice(person.favourite_categories)
            return w.category_demand[person.shops_as, month, category].pick(rng)
        return w.demand[person.shops_as, month].pick(rng)

    def _basket(self, person: _Person, day: int, favourites: Sequence[int] = ()) -> _Basket:
        rng = self.rng
        items: dict[int, int] = {}
        for _ in range(_BASKET_SIZE.pick(rng)):
            from_favourites = favourites and rng.random() < 0.4
            product = rng.choice(favourites) if from_favourites else self._product(person, day)
            items.setdefault(product, self._quantity(product))
        return tuple(items.items())

    def _quantity(self, product: int) -> int:
        item = self.w.products[product]
        # Cheap basics (T-shirts, socks) are often bought two at a time.
        if item.price < 5000 and item.category in ("トップス", "アクセサリー"):
            return 2 if self.rng.random() < 0.15 else 1
        return 1


def _assign_segments(size: int, seed: int) -> list[int]:
    """Exact segment quotas (largest remainder), deterministically shuffled."""
    raw = [share * size for share in _SEGMENT_SHARES]
    counts = [int(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])
    for i in by_remainder[: size - sum(counts)]:
        counts[i] += 1
    segments = [s for s, c in enumerate(counts) for _ in range(c)]
    Random(seed).shuffle(segments)
    return segments


# --------------------------------------------------------------------------
# Rendering: visit records -> Segment messages
# --------------------------------------------------------------------------

# How visitors arrive: "" is direct traffic (bookmarks, typed URL).
_REFERRER = _Weighted(
    (
        ("https://www.google.com/", 0.38),
        ("https://search.yahoo.co.jp/", 0.12),
        ("https://www.instagram.com/", 0.12),
        ("", 0.38),
    )
)
_SEARCH_ENGINES = ("https://www.google.com/", "https://search.yahoo.co.jp/")
# (utm_source, utm_medium, referrer); the newsletter only reaches members.
_NEWSLETTER = ("newsletter", "email", "")
_SOCIAL_CAMPAIGNS = (
    ("line", "social", ""),
    ("instagram", "paid_social", "https://l.instagram.com/"),
)


class _SessionWriter:
    """Builds one web/app session's messages, tracking login state and page."""

    def __init__(self, renderer: _Renderer, person: _Person, visit: _WebSession) -> None:
        self.r = renderer
        self.person = person
        self.device = person.devices[visit.device]
        self.is_app = self.device.kind == "app"
        self.t = visit.start
        self.user_id = person.user_id if visit.login == _MEMBER else None
        self.page_info: dict[str, str] | None = None
        self.navigated = False  # whether a page/screen has been opened yet
        self.campaign: dict[str, str] | None = None
        self.referrer = ""
        self.out: list[tuple[int, dict]] = []

    def arrive(self, day: int) -> str:
        """Decide how the visitor arrived: "campaign", "search" or "direct"."""
        rng = self.r.rng
        member = self.person.user_id is not None
        if rng.random() < (0.2 if member else 0.1):
            options = (_NEWSLETTER, *_SOCIAL_CAMPAIGNS) if member else _SOCIAL_CAMPAIGNS
            source, medium, self.referrer = rng.choice(options)
            name = self.r.w.campaign_names[day]
            self.campaign = {"source": source, "medium": medium, "name": name}
            return "campaign"
        self.referrer = _REFERRER.pick(rng)
        return "search" if self.referrer in _SEARCH_ENGINES else "direct"

    def utm_query(self) -> str:
        c = self.campaign or {}
        return f"?utm_source={c['source']}&utm_medium={c['medium']}&utm_campaign={c['name']}"

    def wait(self, lo_ms: int, hi_ms: int) -> None:
        self.t += lo_ms + int(self.r.rng.random() * (hi_ms - lo_ms))

    def page(self, path: str, title: str, query: str = "") -> None:
        """Open a page; the previous page becomes the referrer.

        In the app this only moves the clock: screens send no page call.
        """
        if self.navigated:
            self.wait(8_000, 75_000)
        self.navigated = True
        if self.is_app:
            return
        if self.page_info is not None:
            self.referrer = self.page_info["url"]
            self.campaign = None  # UTM parameters only tag the landing page
        self.page_info = {
            "url": f"{SHOP_URL}{path}{query}",
            "path": path,
            "title": f"{title}｜{_SITE_TITLE}" if title else _SITE_TITLE,
            "referrer": self.referrer,
        }
        # The session is fully rendered before any message is yielded, so the
        # page dict can double as this message's properties.
        self._emit("page", {"name": self.page_info["title"], "properties": self.page_info})

    def track(self, event: str, properties: dict, gap: tuple[int, int] = (300, 1_500)) -> None:
        self.wait(*gap)
        self._emit("track", {"event": event, "properties": properties})

    def identify(self) -> None:
        """Log in: from here on messages carry the userId as well."""
        self.wait(2_000, 20_000)
        self.user_id = self.person.user_id
        self._emit("identify", {"traits": self.r.traits(self.person, pos=False)})

    def _emit(self, type_: str, body: dict) -> None:
        msg: dict[str, Any] = {"type": type_, "messageId": "", "timestamp": self.r.timestamp(self.t)}
        if self.user_id:
            msg["userId"] = self.user_id
        msg["anonymousId"] = self.device.anonymous_id
        msg.update(body)
        msg["context"] = self._context()
        self.out.append((self.t, msg))

    def _context(self) -> dict:
        if self.is_app:
            _, device, os = _APP_DEVICES[self.device.profile]
            return {
                "channel": "app",
                "device": dict(device),
                "os": dict(os),
                "app": dict(_APP_INFO),
                "locale": "ja-JP",
                "timezone": "Asia/Tokyo",
            }
        context = {
            "channel": "web",
            "page": dict(self.page_info or {}),
            "userAgent": _USER_AGENTS[self.device.kind][self.device.profile][1],
            "locale": "ja-JP",
            "timezone": "Asia/Tokyo",
        }
        if self.campaign:
            context["campaign"] = dict(self.campaign)
        return context


class _Renderer:
    """Expands visit records into Segment message dicts.

    Visits arrive in start order, so receipt and order numbers increase over
    time as a real system's would.
    """

    def __init__(self, world: _World, persons: list[_Person], seed: int) -> None:
        self.w = world
        self.persons = persons
        self.rng = Random(seed * 7_919 + 1)
        self.next_web_order = 10_000_001
        self.receipt_day = -1
        self.receipts: dict[int, int] = {}
        # Formatting timestamps is hot, so the pieces are precomputed:
        # "HH:MM:SS" for every second of a day and ".mmm+09:00" for every ms.
        self.clock = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
        self.millis = [f".{ms:03d}+09:00" for ms in range(1000)]
        self.product_props = [
            {"sku": p.sku, "product_name": p.name, "category": p.category, "brand": p.brand} for p in world.products
        ]

    def render(self, visit: _Visit) -> list[tuple[int, dict]]:
        """(timestamp ms, message) pairs of one visit, in time order."""
        if isinstance(visit, _WebSession):
            return self._web(visit)
        return self._store(visit)

    # -- shared pieces -----------------------------------------------------

    def timestamp(self, t: int) -> str:
        """ISO 8601 in JST with milliseconds, e.g. ``2026-03-14T11:22:33.000+09:00``."""
        day, ms = divmod(t, _DAY_MS)
        second, ms = divmod(ms, 1000)
        return f"{self.w.dates[day]}T{self.clock[second]}{self.millis[ms]}"

    def traits(self, person: _Person, *, pos: bool) -> dict[str, str]:
        traits = {"email": person.email, "name": person.name}
        if person.phone:
            traits["phone"] = person.phone
        traits["member_rank"] = person.rank
        traits["birthday"] = person.birthday
        traits["gender"] = person.gender
        traits["prefecture"] = person.prefecture
        traits["favorite_store"] = STORES[person.home_store].store_id
        if pos and person.pos_id:
            traits["pos_customer_id"] = person.pos_id
        return traits

    def product(self, product: int, day: int, quantity: int | None = None) -> dict:
        props: dict[str, Any] = dict(self.product_props[product])
        props["price"] = self.w.price(product, day)
        if quantity is not None:
            props["quantity"] = quantity
        return props

    def order(self, basket: _Basket, day: int, order_id: str) -> dict:
        items = [self.product(p, day, q) for p, q in basket]
        revenue = sum(item["price"] * item["quantity"] for item in items)
        return {"order_id": order_id, "revenue": revenue, "currency": "JPY", "items": items}

    # -- web and app ---------------------------------------------------------

    def _web(self, v: _WebSession) -> list[tuple[int, dict]]:
        w, rng = self.w, self.rng
        s = _SessionWriter(self, self.persons[v.person], v)
        day = v.start // _DAY_MS
        arrival = s.arrive(day)
        # Search visitors often land straight on a product page.
        lands_on_product = arrival == "search" and v.login != _LOGIN and rng.random() < 0.5
        if lands_on_product:
            pass  # the first product page below is the landing page
        elif arrival == "campaign" and w.in_sale[day]:
            s.page("/sale", "セール", s.utm_query())
        elif arrival == "campaign":
            s.page(f"/feature/{w.campaign_names[day]}", "特集", s.utm_query())
        else:
            s.page("/", "")  # the home page's title is just the site's
        if v.login == _LOGIN:
            s.page("/login", "ログイン")
            s.identify()
            s.page("/mypage", "マイページ")

        quantities = dict(v.order)
        for i, p in enumerate(v.viewed):
            item = w.products[p]
            if not (i == 0 and lands_on_product) and rng.random() < 0.35:
                s.page(f"/category/{_CATEGORY_CODES[item.category][1]}", item.category)
            s.page(f"/products/{item.sku}", f"{item.name}（{item.brand}）")
            s.track("view", self.product(p, day))
            if p in v.favorites:
                s.track("favorite", self.product(p, day), gap=(4_000, 30_000))
            if p in v.cart:
                s.track("cart", self.product(p, day, quantities.get(p, 1)), gap=(4_000, 30_000))

        if v.store_check >= 0:  # checking stock at the store they will visit
            store = STORES[v.store_check]
            s.page(f"/stores/{store.store_id}", f"{store.name} 店舗情報・在庫確認")
        if v.order:
            s.page("/cart", "ショッピングカート")
            s.page("/checkout", "ご注文手続き")
            s.page("/checkout/complete", "ご注文完了")
            order_id = f"W{self.next_web_order}"
            self.next_web_order += 1
            s.track("buy", self.order(v.order, day, order_id))
        elif v.cart and rng.random() < 0.5:
            s.page("/cart", "ショッピングカート")
        return s.out

    # -- stores ----------------------------------------------------------------

    def _store(self, v: _StoreVisit) -> list[tuple[int, dict]]:
        rng = self.rng
        person = self.persons[v.person]
        store = STORES[v.store]
        day = v.start // _DAY_MS
        out: list[tuple[int, dict]] = []
        t = v.start

        def emit(type_: str, body: dict) -> None:
            msg: dict[str, Any] = {"type": type_, "messageId": "", "timestamp": self.timestamp(t)}
            msg["userId"] = person.user_id
            msg.update(body)
            msg["context"] = {"channel": "store", "store_id": store.store_id}
            out.append((t, msg))

        def checkin(method: str) -> None:
            props = {"store_id": store.store_id, "store_name": store.name, "method": method}
            emit("track", {"event": "checkin", "properties": props})

        if v.checkin == _CHECKIN_APP:
            checkin("app_qr")  # scanned at the entrance
            t += _between(rng, 8 * _MINUTE_MS, 45 * _MINUTE_MS)  # browsing the floor
        if v.register:
            emit("identify", {"traits": self.traits(person, pos=True)})
            t += _between(rng, 60_000, 180_000)
        if v.checkin == _CHECKIN_POS:
            checkin("pos")  # member card scanned at the till
            t += _between(rng, 20_000, 90_000)
        if v.basket:
            props = self.order(v.basket, day, self._receipt_number(v.store, day))
            props["store_id"] = store.store_id
            props["staff_id"] = f"E{v.store + 1:02d}{_between(rng, 1, _STAFF_PER_STORE + 1):03d}"
            emit("track", {"event": "buy", "properties": props})
        return out

    def _receipt_number(self, store: int, day: int) -> str:
        if day != self.receipt_day:  # receipt numbers restart every day
            self.receipt_day, self.receipts = day, {}
        n = self.receipts[store] = self.receipts.get(store, 0) + 1
        return f"{STORES[store].store_id}-{self.w.compact_dates[day]}-{n:04d}"


# --------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------


def generate(
    size: int,
    *,
    seed: int = 42,
    end: date | None = None,
    days: int = 365,
) -> Iterator[dict[str, Any]]:
    """Yield demo Segment messages for ``size`` people, oldest first.

    The messages cover the ``days`` days ending at ``end`` (default: today in
    Asia/Tokyo).  Each is a ``/v1/batch`` item of type ``identify``, ``track``
    or ``page`` with a unique ``messageId`` of the form ``demo-{seed}-{n}``.
    The output depends only on the arguments.  A full year averages about 28
    messages per person (store-only members ~8, online members ~40-45,
    anonymous browsers ~12).  Memory grows with the compact plan (one small
    record per visit, ~300 MB for 100,000 people), not with the messages.
    """
    if size < 0:
        raise ValueError("size must be >= 0")
    if days < 1:
        raise ValueError("days must be >= 1")
    if end is None:
        end = datetime.now(JST).date()
    return _stream(size, seed, end - timedelta(days=days - 1), days)


def _stream(size: int, seed: int, start: date, days: int) -> Iterator[dict[str, Any]]:
    world = _World(seed, start, days)
    planner = _Planner(world)
    persons: list[_Person] = []
    visits: list[_Visit] = []
    for idx, segment in enumerate(_assign_segments(size, seed)):
        person, plan = planner.plan(idx, segment)
        persons.append(person)
        visits.extend(plan)
    visits.sort()  # (start, person, seq) is unique, so later fields never compare

    renderer = _Renderer(world, persons, seed)
    # Heap of (timestamp, person, seq, k, message) for rendered, unsent messages.
    pending: list[tuple[int, int, int, int, dict[str, Any]]] = []
    n = 0
    for visit in visits:
        # Messages of this and later visits are at or after visit.start, so
        # everything pending that sorts before it is final.  (A pending entry
        # never shares (start, person, seq) with the bound, so comparing the
        # 5-tuple with the 3-tuple decides on those fields.)
        bound = (visit.start, visit.person, visit.seq)
        while pending and pending[0] < bound:
            msg = heapq.heappop(pending)[4]
            n += 1
            msg["messageId"] = f"demo-{seed}-{n:09d}"
            yield msg
        for k, (t, msg) in enumerate(renderer.render(visit)):
            heapq.heappush(pending, (t, visit.person, visit.seq, k, msg))
    while pending:
        msg = heapq.heappop(pending)[4]
        n += 1
        msg["messageId"] = f"demo-{seed}-{n:09d}"
        yield msg
