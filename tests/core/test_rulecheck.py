"""The rule checker: a rule naming what the workspace never saw gets a warning with the path
and the nearest names it has seen; a rule naming only what it has gets none."""

from __future__ import annotations

from typing import Any

import pytest

from tsunagu.core.kinds import check_definitions
from tsunagu.core.rulecheck import KINDS, check_computed, check_rule
from tsunagu.core.segments import parse_rule
from tsunagu.core.vocabulary import SAMPLE_PER_EVENT, Vocabulary, fold, nearest, view_name


def _shop() -> Vocabulary:
    """A retailer: page views, views, carts, buys online and in two stores, check-ins."""
    v = Vocabulary()
    v.add_counts([
        ("page", "Home", "web", None, 900, 90), ("page", "Product", "app", None, 300, 91),
        ("track", "view", "web", None, 500, 80), ("track", "view", "app", None, 200, 81),
        ("track", "cart", "web", None, 100, 70),
        ("track", "buy", "web", None, 60, 60), ("track", "buy", "store", "S001", 30, 61),
        ("track", "buy", "store", "S002", 10, 62), ("track", "checkin", "store", "S001", 40, 50),
        ("identify", None, "web", None, 70, 40),  # not an event a rule names
    ])  # fmt: skip
    for i in range(12):
        v.add_sample("page", "Home", {"path": "/", "title": "ホーム"})
        v.add_sample("track", "view", {"sku": f"SKU-{i}", "category": ["アウター", "ニット"][i % 2], "price": 9900})
        v.add_sample("track", "buy", {"revenue": 12000, "items": [{"sku": "A", "category": "アウター"}],
                                      "size": {"cm": 30}})  # fmt: skip
        v.add_sample("track", "checkin", {"method": "pos"})
        v.add_sample("track", "cart", {"sku": f"SKU-{i}"})
    v.add_traits([("member_rank", 40), ("name", 50), ("birthday", 5)], people=60)
    for i in range(30):
        v.add_trait_sample({"member_rank": ["ゴールド", "シルバー", "レギュラー"][i % 3], "name": f"会員 {i}"})
    return v.with_definitions(computed=["ltv", "store_visits"], segments=["vip"])


SHOP = _shop()


def _found(rule: Any) -> list[tuple[str, str, str, list[str]]]:
    parse_rule(rule)  # the checker takes valid rules
    return [(w.path, w.kind, w.name, w.suggestions) for w in check_rule(rule, SHOP)]


@pytest.mark.parametrize(
    ("rule", "warnings"),
    [
        # what the workspace has: nothing to say
        (
            {
                "all": [
                    {"did": "buy", "channel": "store", "store_id": "S001"},
                    {"did": "$page", "where": {"path": "/"}},
                    {"trait": "member_rank", "op": "in", "value": ["ゴールド", "シルバー"]},
                    {"data": "buy.size.cm", "op": "gte", "value": 1},
                    {"data": "$sessions", "op": "gte", "value": 2},
                    {"last": "view", "property": "category", "op": "eq", "value": "ニット"},
                    {"computed": "ltv", "op": "gte", "value": 1},
                    {"segment": "vip"},
                    {"first_did": "checkin", "within_days": 7},
                ]
            },
            [],
        ),
        # page views are $page
        ({"did": "page"}, [("rule.did", "unknown_event", "page", ["$page"])]),
        (
            {"all": [{"did": "buy"}, {"not": {"did": "pageview"}}]},
            [("rule.all[1].not.did", "unknown_event", "pageview", ["$page"])],
        ),
        ({"did": "$screen"}, [("rule.did", "unknown_event", "$screen", [])]),
        # a typo, a case, a width
        ({"did": "biy"}, [("rule.did", "unknown_event", "biy", ["buy"])]),
        ({"did": "Buy"}, [("rule.did", "unknown_event", "Buy", ["buy"])]),
        ({"first_did": "ｃａｒｔ", "within_days": 3}, [("rule.first_did", "unknown_event", "ｃａｒｔ", ["cart"])]),
        # channels and stores: never seen, or never with this event
        ({"did": "buy", "channel": "line"}, [("rule.channel", "unknown_channel", "line", [])]),
        ({"did": "checkin", "channel": "web"}, [("rule.channel", "unknown_channel", "web", ["store"])]),
        ({"did": "buy", "store_id": "s001"}, [("rule.store_id", "unknown_store", "s001", ["S001"])]),
        ({"did": "checkin", "store_id": "S002"}, [("rule.store_id", "unknown_store", "S002", ["S001"])]),
        # where: a property no such event has, a value not among the few seen
        ({"did": "view", "where": {"colour": "red"}}, [("rule.where.colour", "unknown_property", "colour", [])]),
        (
            {"did": "view", "where": {"categry": "アウター"}},
            [("rule.where.categry", "unknown_property", "categry", ["category"])],
        ),
        (
            {"did": "view", "where": {"category": "あうたー"}},
            [("rule.where.category", "unknown_value", "あうたー", ["アウター"])],
        ),
        ({"did": "view", "where": {"sku": "SKU-99"}}, []),  # ids are not a list of choices
        # traits
        ({"trait": "birthdy", "op": "exists"}, [("rule.trait", "unknown_trait", "birthdy", ["birthday"])]),
        (
            {"trait": "member_rank", "op": "eq", "value": "gold"},
            [("rule.value", "unknown_value", "gold", ["ゴールド", "シルバー", "レギュラー"])],
        ),
        (
            {"trait": "member_rank", "op": "in", "value": ["ゴールド", "ぷらちな"]},
            [("rule.value[1]", "unknown_value", "ぷらちな", ["ゴールド", "シルバー", "レギュラー"])],
        ),
        ({"trait": "name", "op": "eq", "value": "会員 99"}, []),  # names are not choices
        # user data fields
        (
            {"data": "buy.revnue", "op": "gt", "value": 0},
            [("rule.data", "unknown_field", "buy.revnue", ["buy.revenue"])],
        ),
        (
            {"data": "page.path", "stat": "most_frequent", "op": "eq", "value": "/"},
            [("rule.data", "unknown_field", "page.path", ["$page.path"])],
        ),
        ({"data": "buy.items", "op": "exists"}, [("rule.data", "unknown_field", "buy.items", [])]),  # lists: not fields
        (
            {"last": "view", "property": "categori", "op": "exists"},
            [("rule.property", "unknown_property", "categori", ["category"])],
        ),
        # definitions
        ({"computed": "ltv2", "op": "exists"}, [("rule.computed", "unknown_computed", "ltv2", ["ltv"])]),
        ({"segment": "vips"}, [("rule.segment", "unknown_segment", "vips", ["vip"])]),
    ],
)
def test_a_rule_naming_what_the_workspace_never_saw_is_warned_with_the_nearest_names(
    rule: dict[str, Any], warnings: list[tuple[str, str, str, list[str]]]
) -> None:
    assert _found(rule) == warnings


def test_every_warning_has_one_shape_and_an_english_message() -> None:
    (w,) = check_rule({"did": "page"}, SHOP)
    assert w.to_dict() == {
        "path": "rule.did", "kind": "unknown_event", "name": "page", "event": None, "suggestions": ["$page"],
        "message": "no event 'page' has been seen in this workspace; did you mean '$page' (page views)?",
        "index": None,
    }  # fmt: skip
    (w,) = check_rule({"did": "checkin", "channel": "web"}, SHOP)
    assert w.event == "checkin" and "only on store" in w.message
    assert {w.kind for rule in [{"did": "x"}, {"trait": "x"}] for w in check_rule(rule, SHOP)} <= set(KINDS)


def test_a_property_not_in_a_sample_says_how_many_were_looked_at() -> None:
    v = Vocabulary()
    v.add_counts([("track", "buy", "web", None, 10_000, 1)])
    for _ in range(SAMPLE_PER_EVENT):
        v.add_sample("track", "buy", {"revenue": 1})
    (w,) = check_rule({"did": "buy", "where": {"coupon": "X"}}, v)
    assert w.kind == "unknown_property" and "of the latest 500 looked at" in w.message
    v.add_counts([("track", "cart", "web", None, 3, 2)])
    for _ in range(3):
        v.add_sample("track", "cart", {"sku": "A"})
    (w,) = check_rule({"did": "cart", "where": {"coupon": "X"}}, v)  # every cart was read: no such note
    assert w.message == "no 'cart' event has property 'coupon'"


def test_an_empty_workspace_says_it_has_seen_nothing_yet() -> None:
    (did, trait) = check_rule({"all": [{"did": "buy"}, {"trait": "rank", "op": "exists"}]}, Vocabulary())
    assert did.message == "no events have been seen in this workspace yet" and not did.suggestions
    assert trait.kind == "unknown_trait" and "nobody is in this workspace yet" in trait.message


@pytest.mark.parametrize(
    ("body", "warnings"),
    [
        ({"event": "buy", "agg": "sum", "property": "revenue", "channel": "web,store"}, []),
        ({"event": "buy", "agg": "most_frequent", "property": "items.category"}, []),  # lists crossed
        ({"event": "*", "agg": "last", "property": "$store_id", "channel": "store"}, []),
        ({"event": "$page", "agg": "count", "where": {"path": "/"}}, []),
        ({"event": "page", "agg": "count"}, [("event", "unknown_event", "page", ["$page"])]),
        (
            {"event": "buy", "agg": "sum", "property": "revnue"},
            [("property", "unknown_property", "revnue", ["revenue"])],
        ),
        ({"event": "*", "agg": "sum", "property": "revenu"}, [("property", "unknown_property", "revenu", ["revenue"])]),
        ({"event": "buy", "agg": "count", "channel": "web,aap"}, [("channel", "unknown_channel", "aap", ["app"])]),
        (
            {"event": "checkin", "agg": "count", "store_id": "S003"},
            [("store_id", "unknown_store", "S003", ["S002", "S001"])],
        ),
        (
            {"cases": [{"when": {"did": "buy"}, "value": 1}, {"when": {"any": [{"did": "biy"}]}, "value": 2}]},
            [("cases[1].when.any[0].did", "unknown_event", "biy", ["buy"])],
        ),
    ],
)
def test_a_computed_trait_is_checked_like_a_rule(body: dict[str, Any], warnings: list[Any]) -> None:
    assert [(w.path, w.kind, w.name, w.suggestions) for w in check_computed(body, SHOP)] == warnings


def test_an_applys_warnings_carry_the_definitions_index() -> None:
    items = [
        {"kind": "computed_trait", "name": "pages", "event": "page", "agg": "count"},
        {"kind": "segment", "name": "ok", "rule": {"did": "buy"}},
        {"kind": "segment", "name": "typo", "rule": {"all": [{"did": "buy"}, {"did": "chekin"}]}},
    ]
    found = [(w.index, w.path, w.suggestions) for w in check_definitions(items, SHOP)]
    assert found == [(0, "definitions[0].event", ["$page"]), (2, "definitions[2].rule.all[1].did", ["checkin"])]


@pytest.mark.parametrize(
    ("name", "candidates", "nearest_"),
    [
        ("biy", ["$page", "view", "cart", "buy", "checkin"], ["buy"]),
        ("page", ["$page", "view"], ["$page"]),
        ("Page Viewed", ["$page", "view"], ["$page"]),
        ("ページビュー", ["$page", "view"], ["$page"]),
        ("screen_view", ["$screen", "$page"], ["$screen"]),
        ("page", ["view", "cart"], []),  # no page views seen: nothing to suggest
        ("ＳＴＯＲＥ", ["web", "store"], ["store"]),
        ("ｱｳﾀｰ", ["アウター", "ニット"], ["アウター"]),  # half-width katakana
        ("add to cart", ["add_to_cart", "cart"], ["add_to_cart"]),
        ("buy.revnue", ["buy.currency", "buy.revenue"], ["buy.revenue"]),
        ("zzz", ["buy", "view"], []),
        ("Order Completed", ["view", "buy"], ["buy"]),  # Segment's e-commerce spec's name for it
        ("購入", ["view", "buy"], ["buy"]),
    ],
)
def test_nearest_names_look_past_case_width_kana_and_what_people_call_page_views(
    name: str, candidates: list[str], nearest_: list[str]
) -> None:
    assert nearest(name, candidates) == nearest_


def test_fold_and_view_names() -> None:
    assert fold("Ｐａｇｅ_View") == "pageview" and fold("あうたー") == "アウター"
    assert view_name("pv") == "$page" and view_name("$screen") == "$screen" and view_name("buy") is None


def test_the_vocabulary_names_page_views_as_rules_do_and_lists_the_most_frequent_first() -> None:
    d = SHOP.to_dict()
    assert d["events"][0] == {"name": "$page", "count": 1200}
    assert [e["name"] for e in d["events"]] == ["$page", "view", "buy", "cart", "checkin"]  # ties: by name
    assert d["channels"] == ["web", "app", "store"] and d["stores"] == ["S001", "S002"]
    assert "$page.path" in d["fields"] and "$sessions" in d["fields"] and "buy.size.cm" in d["fields"]
    assert SHOP.events["buy"].paths >= {"revenue", "items.sku", "items.category", "size.cm"}
